"""The spawner: a wrapper per request (the compiled one, and the forked Python one: each test that
spawns runs with both), the claim's start time against pid reuse, and the fence that kills a task
whose agent is gone (and only with the fence)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gpuplan import native
from gpuplan.executor import launcher
from gpuplan.executor.launcher import LaunchRequest, Spawner


@pytest.fixture(params=["compiled", "forked"])
def compiled(request: pytest.FixtureRequest) -> bool:
    """Whether the spawner starts the compiled wrapper (skipped where it is not built) or forks."""
    if request.param == "compiled" and native.wrapper() is None:
        pytest.skip(native.WRAPPER_UNAVAILABLE)
    return request.param == "compiled"


def _request(tmp: Path, name: str, script: str) -> LaunchRequest:
    return LaunchRequest(
        dir=str(tmp / "attempts" / name),
        log=str(tmp / "logs" / f"{name}.log"),
        argv=["/bin/sh", "-c", script],
        env={"MARK": str(tmp / f"{name}.mark")},
        cwd=str(tmp),
    )


def _wait(pred: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_a_batch_is_spawned_and_recorded_by_its_wrappers(tmp_path: Path, compiled: bool) -> None:
    """Each request gets a wrapper that claims with its pid and start time, runs the argv with the
    request's environment, and records the exit code."""
    sp = Spawner(compiled=compiled)
    try:
        reqs = [_request(tmp_path, f"a{k}", f'echo ran > "$MARK"; exit {k}') for k in range(3)]
        pids = sp.spawn(reqs)
        assert all(isinstance(p, int) for p in pids)
        for k, r in enumerate(reqs):
            d = Path(r.dir)
            assert _wait(lambda d=d: launcher.read_exit(d) is not None)
            assert launcher.read_exit(d)["rc"] == k  # type: ignore[index]
            claim = launcher.read_claim(d)
            assert claim is not None and claim["pid"] == pids[k] and claim["start"] > 0
            assert (tmp_path / f"a{k}.mark").read_text() == "ran\n"
    finally:
        sp.close()


def test_the_spawner_shares_its_starters_session_in_a_group_of_its_own(
    tmp_path: Path, compiled: bool
) -> None:
    """The spawner stays in the session of whoever starts it (one scheduling entity under Linux
    autogroup, so a request reaches it without waiting for a turn among the tasks' sessions), leads its
    own process group (terminal signals to the executor's group miss it), and each wrapper it forks
    still leads a session of its own."""
    sp = Spawner(compiled=compiled)
    try:
        req = _request(tmp_path, "s", 'echo "$$" > "$MARK"; sleep 5')
        (pid,) = sp.spawn([req])
        proc = sp._proc
        assert proc is not None and isinstance(pid, int)
        assert os.getsid(proc.pid) == os.getsid(0)
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        mark = tmp_path / "s.mark"
        assert _wait(lambda: mark.exists() and mark.read_text().endswith("\n"))  # written whole
        assert os.getsid(pid) == pid
        assert os.getsid(int(mark.read_text())) == pid
        launcher.kill(pid)
    finally:
        sp.close()


def test_the_wrapper_is_the_one_asked_for(tmp_path: Path, compiled: bool) -> None:
    """With the compiled wrapper built, the spawner starts that program; asked not to, it forks
    itself (a Python process)."""
    sp = Spawner(compiled=compiled)
    try:
        (pid,) = sp.spawn([_request(tmp_path, "w", "sleep 5")])
        assert isinstance(pid, int)
        exe = os.readlink(f"/proc/{pid}/exe")
        assert (exe == native.wrapper()) if compiled else ("python" in Path(exe).name)
        launcher.kill(pid)
    finally:
        sp.close()


def test_a_spawner_without_the_compiled_wrapper_forks_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the compiled wrapper is not built, the spawner forks Python wrappers and the log says so,
    once per process."""
    monkeypatch.setattr(native, "wrapper", lambda: None)
    monkeypatch.setattr(Spawner, "_said_no_native", False)
    with caplog.at_level("WARNING", logger="gpuplan"):
        sp, again = Spawner(), Spawner()
    assert sp.native is None and again.native is None
    assert [r.getMessage() for r in caplog.records] == [native.WRAPPER_UNAVAILABLE]
    try:
        req = _request(tmp_path, "f", 'echo ran > "$MARK"')
        assert isinstance(sp.spawn([req])[0], int)
        assert _wait(lambda: launcher.read_exit(Path(req.dir)) is not None)
        assert (tmp_path / "f.mark").read_text() == "ran\n"
    finally:
        sp.close()


def test_a_task_starts_as_a_fresh_process_would(tmp_path: Path, compiled: bool) -> None:
    """The task runs in the request's directory with no signal ignored or blocked (the spawner ignores
    SIGCHLD and SIGINT, its interpreter SIGPIPE), stdin on /dev/null, and its output in the log.

    The forked wrapper cannot reset glibc's internal signals (32 and 33, which Python's `signal`
    refuses): those ignored in this process (as when `make`, which starts commands with posix_spawn,
    started the tests) stay ignored in its tasks. The compiled one resets them too."""
    sp = Spawner(compiled=compiled)
    try:
        req = replace(
            _request(tmp_path, "fresh", ""),
            argv=["/bin/sh", "-c", 'grep -E "^Sig(Ign|Blk)" /proc/$$/status; pwd; readlink /proc/$$/fd/0'],
            cwd=str(tmp_path / "work"),
        )
        (tmp_path / "work").mkdir()
        assert isinstance(sp.spawn([req])[0], int)
        assert _wait(lambda: launcher.read_exit(Path(req.dir)) is not None)
        assert launcher.read_exit(Path(req.dir))["rc"] == 0  # type: ignore[index]
        out = Path(req.log).read_text().split("\n")
        assert out[0] == "SigBlk:\t0000000000000000"
        assert out[2:4] == [str(tmp_path / "work"), "/dev/null"]
        ignored = int(out[1].split()[1], 16)
        here = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("SigIgn"))
        internal = int(here.split()[1], 16) & (0b11 << 31)  # signals 32 and 33 ignored in this process
        assert ignored == 0 if compiled else ignored & ~internal == 0
    finally:
        sp.close()


def test_a_task_that_cannot_start_is_recorded_with_why(tmp_path: Path, compiled: bool) -> None:
    """A missing program or working directory: exit code 127, the reason in the record and the log."""
    sp = Spawner(compiled=compiled)
    try:
        prog = replace(_request(tmp_path, "prog", ""), argv=[str(tmp_path / "nothing")])
        cwd = replace(_request(tmp_path, "cwd", "exit 0"), cwd=str(tmp_path / "nowhere"))
        assert all(isinstance(p, int) for p in sp.spawn([prog, cwd]))
        for req, missing in ((prog, tmp_path / "nothing"), (cwd, tmp_path / "nowhere")):
            assert _wait(lambda req=req: launcher.read_exit(Path(req.dir)) is not None)
            rec = launcher.read_exit(Path(req.dir)) or {}
            assert rec["rc"] == 127 and rec["error"] == f"[Errno 2] No such file or directory: '{missing}'"
            assert f"gpuplan: cannot start '{req.argv[0]}': {rec['error']}" in Path(req.log).read_text()
            assert launcher.read_started(Path(req.dir)) is None
    finally:
        sp.close()


def test_sigterm_ends_the_task_and_the_wrapper_records_it(tmp_path: Path, compiled: bool) -> None:
    """SIGTERM to the attempt's group ends the task (default disposition) but not the wrapper, which
    records the exit code as minus the signal."""
    sp = Spawner(compiled=compiled)
    try:
        req = _request(tmp_path, "term", "sleep 30")
        (pid,) = sp.spawn([req])
        assert isinstance(pid, int)
        assert _wait(lambda: launcher.read_started(Path(req.dir)) is not None)
        launcher.terminate(pid)
        assert _wait(lambda: launcher.read_exit(Path(req.dir)) is not None)
        assert launcher.read_exit(Path(req.dir))["rc"] == -15  # type: ignore[index]
    finally:
        sp.close()


def test_pid_reuse_is_caught_by_the_start_time(tmp_path: Path) -> None:
    """A live pid whose start time differs from the claim's is not the attempt's wrapper."""
    me = os.getpid()
    real = launcher._start_time(me)
    for name, start, alive in (("a", real, True), ("b", (real or 0) + 1, False)):
        d = tmp_path / name
        d.mkdir()
        (d / "claim").write_text(json.dumps({"pid": me, "t": 0, "start": start}))
        assert launcher.wrapper_alive(me, d) is alive


def test_a_life_check_reads_the_claim_once_and_still_catches_pid_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim never changes, so later life checks of an attempt read only /proc; a pid taken by
    another process (another start time) is still not the wrapper."""
    d = tmp_path / "attempt"
    d.mkdir()
    me = os.getpid()
    real = launcher._start_time(me)
    (d / "claim").write_text(json.dumps({"pid": me, "t": 0, "start": real}))
    reads: list[Path] = []
    read_claim = launcher.read_claim
    monkeypatch.setattr(launcher, "read_claim", lambda a: reads.append(a) or read_claim(a))
    assert all(launcher.wrapper_alive(me, d) for _ in range(3))
    assert reads == [d]
    monkeypatch.setattr(launcher, "_start_time", lambda pid: (real or 0) + 7)  # the pid reused
    assert not launcher.wrapper_alive(me, d)


def test_a_fenced_wrapper_kills_its_task_when_the_spawner_goes(tmp_path: Path, compiled: bool) -> None:
    """With the fence, ending the spawner ends its tasks (the head runs them elsewhere); without it,
    tasks outlive the spawner and finish."""
    fenced, free = Spawner(fence=True, compiled=compiled), Spawner(compiled=compiled)
    a = _request(tmp_path, "fenced", 'sleep 3; echo done > "$MARK"')
    b = _request(tmp_path, "free", 'sleep 1; echo done > "$MARK"')
    (pa,), (pb,) = fenced.spawn([a]), free.spawn([b])
    assert isinstance(pa, int) and isinstance(pb, int)
    assert _wait(lambda: launcher.read_started(Path(a.dir)) is not None)
    assert _wait(lambda: launcher.read_started(Path(b.dir)) is not None)
    fenced.close()
    free.close()
    assert _wait(lambda: launcher.read_exit(Path(a.dir)) is not None, timeout=3)
    ended = launcher.read_exit(Path(a.dir)) or {}
    assert ended["rc"] == -9 and ended["fenced"] is True
    assert _wait(lambda: not launcher.wrapper_alive(pa, Path(a.dir)))
    assert _wait(lambda: launcher.read_exit(Path(b.dir)) is not None)
    assert launcher.read_exit(Path(b.dir))["rc"] == 0  # type: ignore[index]
    time.sleep(2.5)  # past the fenced task's own end: it never got there
    assert (tmp_path / "free.mark").exists() and not (tmp_path / "fenced.mark").exists()


def test_a_wrapper_announces_its_end_after_recording_it(tmp_path: Path, compiled: bool) -> None:
    """With `notify`, the wrapper creates that file once the exit is on disk, whether the task ended,
    could not start, or was fenced; without it, nothing is created."""
    ended = tmp_path / "ended"
    ended.mkdir()
    fenced, free = Spawner(fence=True, compiled=compiled), Spawner(compiled=compiled)
    ran = replace(_request(tmp_path, "ran", "exit 7"), notify=str(ended / "ran"))
    bad = replace(_request(tmp_path, "bad", ""), argv=["/nonexistent/task"], notify=str(ended / "bad"))
    cut = replace(_request(tmp_path, "cut", "sleep 30"), notify=str(ended / "cut"))
    quiet = _request(tmp_path, "quiet", "exit 0")
    try:
        assert all(isinstance(p, int) for p in free.spawn([ran, bad, quiet]))
        assert all(isinstance(p, int) for p in fenced.spawn([cut]))
        assert _wait(lambda: launcher.read_started(Path(cut.dir)) is not None)
        fenced.close()
        for req, rc in ((ran, 7), (bad, 127), (cut, -9)):
            assert _wait(lambda req=req: Path(req.notify).exists())
            assert (launcher.read_exit(Path(req.dir)) or {}).get("rc") == rc  # on disk before the notice
        assert _wait(lambda: launcher.read_exit(Path(quiet.dir)) is not None)
        assert sorted(p.name for p in ended.iterdir()) == ["bad", "cut", "ran"]
    finally:
        free.close()
        fenced.close()


def _switches(pid: int) -> int:
    """The voluntary context switches of a process so far (its wake-ups from sleep)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt")))


def test_a_fenced_wrapper_sleeps_until_its_task_ends_or_its_spawner_goes(
    tmp_path: Path, compiled: bool
) -> None:
    """The kernel tells a fenced wrapper that its spawner ended (a parent-death signal): while its
    task runs the wrapper never wakes, and once the spawner goes the task is killed at once."""
    sp = Spawner(fence=True, stderr=tmp_path / "spawner.log", compiled=compiled)
    req = _request(tmp_path, "calm", "sleep 30")
    (pid,) = sp.spawn([req])
    assert isinstance(pid, int)
    assert _wait(lambda: launcher.read_started(Path(req.dir)) is not None)
    time.sleep(0.2)
    before = _switches(pid)
    time.sleep(1.2)  # a wrapper that looked every 0.5 s would have woken twice
    assert _switches(pid) == before
    sp.close()
    assert _wait(lambda: launcher.read_exit(Path(req.dir)) is not None, timeout=2)
    assert (launcher.read_exit(Path(req.dir)) or {}).get("fenced") is True
    assert "parent-death" not in (tmp_path / "spawner.log").read_text()


def test_the_fence_falls_back_to_looking_at_the_parent(tmp_path: Path) -> None:
    """Without the kernel's signal, the wrapper waits for its task and looks at its parent every 0.5 s:
    the task's code when it ends first, the fence when the parent is no longer the spawner."""
    spec = importlib.util.spec_from_file_location("wrapper_under_test", launcher.WRAPPER)
    assert spec is not None and spec.loader is not None
    wrapper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wrapper)

    class Fenced(Exception):
        pass

    def fence() -> None:
        raise Fenced

    quick = subprocess.Popen(["sh", "-c", "exit 3"])
    assert wrapper._wait_polled(quick, os.getppid(), fence) == 3
    slow = subprocess.Popen(["sleep", "30"])
    try:
        t0 = time.monotonic()
        with pytest.raises(Fenced):
            wrapper._wait_polled(slow, -1, fence)  # the parent is not pid -1: the spawner is gone
        assert time.monotonic() - t0 < 5
    finally:
        slow.kill()
        slow.wait()


def test_a_batch_is_answered_once_its_tasks_have_started(tmp_path: Path, compiled: bool) -> None:
    """With a start wait, every task of the batch has started (its wrapper wrote `started`) when the
    spawner answers (without one, the answer comes right after the forks, before most starts)."""
    sp = Spawner(await_start_s=5.0, compiled=compiled)
    pids: list[int | str] = []
    try:
        reqs = [_request(tmp_path, f"t{k}", "sleep 2") for k in range(12)]
        pids = sp.spawn(reqs)
        assert all(launcher.read_started(Path(r.dir)) is not None for r in reqs)
    finally:
        for pid in pids:
            if isinstance(pid, int):
                launcher.kill(pid)
        sp.close()


def test_the_start_wait_ends_with_an_attempt_that_runs_nothing(tmp_path: Path, compiled: bool) -> None:
    """A wrapper that finds its attempt cancelled, or cannot start the argv, ends the wait as it exits."""
    sp = Spawner(await_start_s=30.0, compiled=compiled)
    try:
        cancelled = _request(tmp_path, "c", "sleep 2")
        Path(cancelled.dir).mkdir(parents=True)
        assert launcher.cancel_if_unclaimed(Path(cancelled.dir))
        missing = replace(_request(tmp_path, "m", ""), argv=[str(tmp_path / "no-such-program")])
        t0 = time.monotonic()
        pids = sp.spawn([cancelled, missing])
        assert time.monotonic() - t0 < 10
        assert all(isinstance(p, int) for p in pids)
        assert launcher.read_started(Path(cancelled.dir)) is None
        assert _wait(lambda: launcher.read_exit(Path(missing.dir)) is not None)
        assert launcher.read_exit(Path(missing.dir))["rc"] == 127  # type: ignore[index]
    finally:
        sp.close()


def test_the_start_wait_is_bounded(tmp_path: Path, compiled: bool) -> None:
    """A wrapper stuck before its start (here: its log is a FIFO nobody reads yet) holds the answer
    no longer than the bound; its pid is answered, and the task starts once the wrapper can go on."""
    sp = Spawner(await_start_s=0.5, compiled=compiled)
    try:
        req = _request(tmp_path, "f", "exit 0")
        Path(req.log).parent.mkdir(parents=True)
        os.mkfifo(req.log)
        t0 = time.monotonic()
        (pid,) = sp.spawn([req])
        took = time.monotonic() - t0
        assert isinstance(pid, int) and 0.4 < took < 5
        assert launcher.read_started(Path(req.dir)) is None
        fd = os.open(req.log, os.O_RDONLY | os.O_NONBLOCK)  # a reader: the wrapper's open goes on
        try:
            assert _wait(lambda: launcher.read_exit(Path(req.dir)) is not None)
        finally:
            os.close(fd)
    finally:
        sp.close()


def test_a_spawner_without_descriptors_for_the_wait_answers_and_says_so(tmp_path: Path) -> None:
    """With no descriptor left for the start wait's pipe (`os.pipe` failing with EMFILE), the batch is
    still answered (with its pid), unpaced, and the spawner says so on stderr (its log)."""
    req = _request(tmp_path, "n", "exit 0")
    script = (
        "import errno, os, runpy, sys\n"
        "def no_pipe():\n"
        "    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))\n"
        "os.pipe = no_pipe\n"
        f"sys.argv = [{launcher.WRAPPER!r}, '--serve', '--await-start=5']\n"
        f"runpy.run_path({launcher.WRAPPER!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script],
        input=json.dumps([dataclasses.asdict(req)]) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    (reply,) = json.loads(proc.stdout)
    assert isinstance(reply.get("pid"), int)
    assert "answering without awaiting the starts" in proc.stderr

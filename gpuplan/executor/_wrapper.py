"""Per-attempt wrapper: claim the attempt, run the task's argv, record how it ended.

Run by path with only the standard library (fast start, no gpuplan import), in one of two forms:

    python -I _wrapper.py ATTEMPT_DIR LOG_FILE -- ARGV...     one attempt (the wrapper is this process)
    python -I _wrapper.py --serve [--fence] [--await-start=S] [--native=PATH]
                                                              a spawner: one attempt per request

The spawner reads one batch per line on stdin, a JSON list of requests ({"dir", "log", "argv", "env",
"cwd", "mkdirs", "notify"}), starts a wrapper for each and answers the batch with one JSON line on
stdout: per request {"pid": wrapper pid} or {"error": text}. With `--native=PATH` the wrapper is the
compiled one at PATH (`gpuplan/native/wrapper.c`, the same steps below), spawned (vfork and exec:
under a millisecond of CPU); without it, a fork of this process runs them (some 4 ms of CPU more per
launch: until its task ends, the fork shares this process's pages, and each of the two copies every
page it touches; against some 30 ms for a new interpreter). With `--await-start=S` it answers once
every wrapper of the batch has started its task or ended, or after S seconds: the wrappers share the
write end of a pipe, each closes it after step 2, and the spawner reads the pipe to its end of file.
Whoever sends the batches is so paced by the tasks' starts, and records the next attempts only when
the last ones have their processes. One line each way per batch: on a busy machine every wake-up of
either process waits for a core. It ends at the end of its input. Each wrapper
leads its own session, so it outlives the spawner and
whoever started it; with `--fence` (the agents of a cluster) a wrapper whose spawner is gone kills
its task: the head counts that node as lost and runs the task elsewhere.

A wrapper:

1. Claims: creates ATTEMPT_DIR/claim exclusively (O_CREAT | O_EXCL) holding its pid and start time
   (field 22 of /proc/self/stat, against pid reuse). If the file exists, a restarted executor
   cancelled this attempt first: it exits without running anything. The claim is the single point
   that decides whether an attempt runs, shared by wrapper and executor. It is not fsynced: the
   race it settles is between processes of one kernel; a power loss kills the task anyway.
2. Starts the task with stdout and stderr appended to LOG_FILE; writes ATTEMPT_DIR/started.
3. Waits. SIGTERM reaches the task through the process group; the wrapper ignores it (a Python
   handler, reset on exec, so the task keeps the default) to survive and record the exit code.
4. Writes ATTEMPT_DIR/exit atomically and durably (temporary file, fsync, rename): {"rc", "t"}.
   A restarted executor learns from it how an orphaned attempt ended. Then, when the request names a
   `notify` path, creates that empty file: a node agent lists one directory of such files to learn
   which attempts ended, rather than reading every attempt's exit file (a hint only: the exit file
   stays the record, and a wrapper found dead is read from it too).
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable


def _write_atomic(path: str, data: dict[str, object], durable: bool = True) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data))
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _record_exit(attempt_dir: str, data: dict[str, object], notify: str) -> None:
    """Step 4: the exit record, then the end announced at `notify` (if any; a failure is logged on
    stderr, the spawner's log: the agent then finds the end by the wrapper's life check)."""
    _write_atomic(os.path.join(attempt_dir, "exit"), data)
    if notify:
        try:
            os.close(os.open(notify, os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError as exc:
            print(f"gpuplan wrapper: cannot announce the end of {attempt_dir}: {exc}", file=sys.stderr)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def run_attempt(
    attempt_dir: str,
    log_path: str,
    command: list[str],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    fence_ppid: int = 0,
    notify: str = "",
    started_fd: int = -1,
) -> int:
    """Claim, run and record one attempt (steps 1-4). With `fence_ppid`, kill the task once the parent
    (the spawner) is gone; with `notify`, announce the end there; `started_fd` (the spawner's pipe) is
    closed once the task has started (or the attempt ended without one: at the wrapper's exit).
    Returns the wrapper's own exit code."""
    os.makedirs(attempt_dir, exist_ok=True)
    try:
        fd = os.open(os.path.join(attempt_dir, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return 0  # cancelled by a restarted executor before this attempt started
    me = os.getpid()
    os.write(fd, json.dumps({"pid": me, "t": time.time(), "start": start_time(me)}).encode())
    os.close(fd)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(log_path, "ab") as log:
        try:
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
            )
        except OSError as exc:
            log.write(f"gpuplan: cannot start {command[0]!r}: {exc}\n".encode())
            _record_exit(attempt_dir, {"rc": 127, "t": time.time(), "error": str(exc)}, notify)
            return 0
        _write_atomic(
            os.path.join(attempt_dir, "started"), {"child_pid": child.pid, "t": time.time()}, durable=False
        )
        if started_fd >= 0:
            os.close(started_fd)  # the spawner's wait for this batch's starts (`serve`)
        # without a fence, a plain wait (PEP 475 retries it after the SIGTERM handler runs)
        rc = _wait_fenced(child, attempt_dir, fence_ppid, notify) if fence_ppid else child.wait()
    _record_exit(attempt_dir, {"rc": rc, "t": time.time()}, notify)
    return 0


def _wait_fenced(child: subprocess.Popen[bytes], attempt_dir: str, ppid: int, notify: str) -> int:
    """Wait for the task; if the spawner (`ppid`) goes away first, kill the task's process group.

    The kernel signals the wrapper when its parent ends (Linux `prctl(PR_SET_PDEATHSIG)`, with a
    real-time signal, `SIGRTMAX - 2`, that no one sends a task's group by habit), so the fence acts
    at once and costs nothing while the task runs; a spawner gone before the request is caught by
    `getppid`. Where prctl fails, the wrapper says so on stderr and looks every 0.5 s instead."""

    def fence(*_: object) -> None:
        _record_exit(attempt_dir, {"rc": -9, "t": time.time(), "fenced": True}, notify)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # the task's group, this wrapper included

    try:
        sig = signal.SIGRTMAX - 2
        signal.signal(sig, fence)
        _parent_death_signal(sig)
    except (OSError, AttributeError, ValueError) as exc:
        print(f"gpuplan wrapper: no parent-death signal ({exc}); fence checks every 0.5 s", file=sys.stderr)
        return _wait_polled(child, ppid, fence)
    if os.getppid() != ppid:
        fence()
    rc = child.wait()  # PEP 475: the wait goes on after a SIGTERM's handler; the fence never returns
    signal.signal(sig, signal.SIG_IGN)  # the task has ended: its exit code is what to record
    return rc


def _parent_death_signal(sig: int) -> None:
    """Have the kernel send this process `sig` when its parent ends (prctl PR_SET_PDEATHSIG = 1)."""
    import ctypes  # loaded by the spawner before it forks (`serve`)

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, sig, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _wait_polled(child: subprocess.Popen[bytes], ppid: int, fence: Callable[[], None]) -> int:
    """The fence without the kernel's signal: look at the parent every 0.5 s."""
    pidfd = os.pidfd_open(child.pid)
    try:
        while True:
            ready, _, _ = select.select([pidfd], [], [], 0.5)
            if ready:
                return child.wait()
            if os.getppid() != ppid:
                fence()
    finally:
        os.close(pidfd)


def serve(fence: bool, await_start_s: float = 0.0, native: str = "") -> int:
    """The spawner loop (module docstring). With `await_start_s`, a batch is answered once each of its
    wrappers has started its task or ended, or after that many seconds, whichever is first; with
    `native`, the wrappers are that compiled program rather than forks of this process."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # wrappers are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if fence:
        import ctypes  # noqa: F401 - loaded once here for the fenced wrappers forked below
    me = os.getpid()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            batch = json.loads(line)
        except ValueError as exc:
            out.write(json.dumps([{"error": f"bad request: {exc}"}]) + "\n")
            out.flush()
            continue
        pipe = None
        if await_start_s > 0:
            try:
                pipe = os.pipe()
            except OSError as exc:  # out of descriptors: this batch is answered unpaced, and says so
                print(f"gpuplan spawner: answering without awaiting the starts: {exc}", file=sys.stderr)
                sys.stderr.flush()
        if native:
            if pipe is not None:
                os.set_inheritable(pipe[1], True)  # the compiled wrappers are exec'd: they must inherit it
            replies = [_spawn_native(native, req, me if fence else 0, pipe) for req in batch]
        else:
            replies = [_fork_one(req, me if fence else 0, pipe) for req in batch]
        if pipe is not None:
            # every wrapper of the batch holds the write end until its task has started: the read end
            # sees its end of file once all have, with no file to poll
            os.close(pipe[1])
            _until_eof(pipe[0], time.monotonic() + await_start_s)
            os.close(pipe[0])
        out.write(json.dumps(replies) + "\n")
        out.flush()
    return 0


def _until_eof(fd: int, deadline: float) -> None:
    """Read `fd` until its end of file or the deadline (monotonic)."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not p.poll(1000 * left):
            return
        if not os.read(fd, 512):
            return


def _prepare(req: dict[str, object]) -> dict[str, str]:
    """What every wrapper of a request needs first: its directories (`mkdirs`, the log's), and the
    task's environment (this process's, with the request's on top), returned."""
    for d in req.get("mkdirs", ()):  # type: ignore[attr-defined]
        os.makedirs(d, exist_ok=True)
    os.makedirs(os.path.dirname(req["log"]), exist_ok=True)  # type: ignore[arg-type]
    env = dict(os.environ)
    env.update(req.get("env", {}))  # type: ignore[arg-type]
    return env


#: The compiled wrapper's standard input and output: /dev/null (its stderr is the spawner's log).
_NULL_IO = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0), (os.POSIX_SPAWN_DUP2, 0, 1)]


def _spawn_native(
    native: str, req: dict[str, object], fence_ppid: int, pipe: tuple[int, int] | None = None
) -> dict[str, object]:
    """Spawn the compiled wrapper at `native` for one request, in a session of its own; its pid, or
    why not. It inherits the write end of `pipe` and closes it once its task has started (`serve`)."""
    try:
        env = _prepare(req)
        os.makedirs(req["dir"], exist_ok=True)  # type: ignore[arg-type]
        argv = [
            native,
            req["dir"],
            req["log"],
            str(req.get("notify") or ""),
            str(fence_ppid),
            str(pipe[1] if pipe is not None else -1),
            str(req.get("cwd") or ""),
            "--",
            *req["argv"],  # type: ignore[misc]
        ]
        pid = os.posix_spawn(native, argv, env, file_actions=_NULL_IO, setsid=True)
    except Exception as exc:  # a bad request or no process: answer it, keep serving
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"pid": pid}


def _fork_one(
    req: dict[str, object], fence_ppid: int, pipe: tuple[int, int] | None = None
) -> dict[str, object]:
    """Fork the wrapper of one request; its pid, or why not. The child never returns; it keeps the
    write end of `pipe` (read end, write end) open until its task has started (`serve`)."""
    try:
        env = _prepare(req)
        pid = os.fork()
    except Exception as exc:  # a bad request or no fork: answer it, keep serving
        return {"error": f"{type(exc).__name__}: {exc}"}
    if pid:
        return {"pid": pid}
    code = 1  # the wrapper
    try:
        if pipe is not None:
            os.close(pipe[0])
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        code = run_attempt(
            req["dir"],  # type: ignore[arg-type]
            req["log"],  # type: ignore[arg-type]
            req["argv"],  # type: ignore[arg-type]
            env,
            req.get("cwd"),  # type: ignore[arg-type]
            fence_ppid,
            str(req.get("notify") or ""),
            pipe[1] if pipe is not None else -1,
        )
    finally:
        os._exit(code)


def main(argv: list[str]) -> int:
    """Entry point; returns the wrapper's own exit code (the task's code is in the exit file)."""
    if argv[:1] == ["--serve"]:
        wait = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--await-start=")]
        native = [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--native=")]
        return serve("--fence" in argv[1:], float(wait[-1]) if wait else 0.0, native[-1] if native else "")
    if len(argv) < 4 or argv[2] != "--":
        print(
            "usage: _wrapper.py ATTEMPT_DIR LOG_FILE -- ARGV... "
            "| --serve [--fence] [--await-start=S] [--native=PATH]",
            file=sys.stderr,
        )
        return 2
    return run_attempt(argv[0], argv[1], argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

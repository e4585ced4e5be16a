"""Start, observe and stop task attempts through the per-attempt wrapper (`_wrapper.py`).

Each attempt runs in a wrapper that leads a new session (its own process group, so stopping it
reaches the task and its children, and killing the executor leaves it running). Wrappers are started
by a `Spawner` (`python -I _wrapper.py --serve`), one small long-lived process per executor or agent:
the compiled wrapper (`gpuplan/native/wrapper.c`) spawned, or where it is not built, a fork of the
spawner, rather than a new interpreter per launch; `spawn` starts one wrapper by itself. The
wrapper's files in DIR are the ground truth a restarted executor reads: `claim` (who decided the
attempt's fate: the wrapper's pid and start time, or `cancelled`), `started` and `exit` (the task's
exit code).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from gpuplan import native

WRAPPER = str(Path(__file__).with_name("_wrapper.py"))
log = logging.getLogger("gpuplan")


def spawn(
    attempt_dir: Path, log: Path, argv: list[str], env: dict[str, str], cwd: str
) -> subprocess.Popen[bytes]:
    """Start the wrapper for one attempt (the wrapper's own errors go to the task's log)."""
    attempt_dir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-I", WRAPPER, str(attempt_dir), str(log), "--", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            start_new_session=True,
            close_fds=True,
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_exit(attempt_dir: Path) -> dict[str, Any] | None:
    """The wrapper's exit record ({"rc", "t"}), or None while the task runs (or if it never ended)."""
    return _read_json(attempt_dir / "exit")


def read_started(attempt_dir: Path) -> dict[str, Any] | None:
    """The wrapper's start record ({"child_pid", "t"}), or None."""
    return _read_json(attempt_dir / "started")


def read_claim(attempt_dir: Path) -> dict[str, Any] | None:
    """The claim: {"pid", "t"} from the wrapper, {"cancelled": true} from an executor, or None."""
    return _read_json(attempt_dir / "claim")


def cancel_if_unclaimed(attempt_dir: Path) -> bool:
    """Claim an attempt for cancellation; True when it never started and now never will.

    The wrapper and the executor race for the same exclusive create; exactly one of them wins.
    """
    attempt_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(attempt_dir / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.write(fd, json.dumps({"cancelled": True, "t": time.time()}).encode())
    os.fsync(fd)
    os.close(fd)
    return True


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


#: (attempt dir, wrapper pid) -> the start time in the wrapper's claim. A claim never changes once
#: written, so a life check, about once a second per running attempt, reads only /proc after the
#: first. Emptied when it outgrows `_CLAIMS_MAX` (ended attempts are not removed one by one).
_claim_start: dict[tuple[str, int], int] = {}
_CLAIMS_MAX = 100_000


def wrapper_alive(pid: int, attempt_dir: Path) -> bool:
    """True when `pid` is alive and is this attempt's wrapper (guards against pid reuse: the start
    time in the claim, or for a wrapper started by path, its command line)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    key = (str(attempt_dir), pid)
    start = _claim_start.get(key)
    if start is None:
        claim = read_claim(Path(attempt_dir)) or {}
        if claim.get("pid") == pid and claim.get("start") is not None:
            if len(_claim_start) >= _CLAIMS_MAX:
                _claim_start.clear()
            start = _claim_start[key] = int(claim["start"])
    if start is not None:
        return _start_time(pid) == start
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal probe
    if not cmdline:
        return False  # a zombie: exited, not yet reaped
    return str(attempt_dir).encode() in cmdline


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the attempt's process group (the wrapper leads it); gone groups are ignored."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def terminate(pid: int) -> None:
    """SIGTERM to the attempt's process group."""
    signal_group(pid, signal.SIGTERM)


def kill(pid: int) -> None:
    """SIGKILL to the attempt's process group."""
    signal_group(pid, signal.SIGKILL)


AWAIT_START_S = 0.5  # the longest a spawner's answer waits for its wrappers' tasks to start (`Spawner`)


@dataclass
class LaunchRequest:
    """One attempt to start: its directory and log, argv, the environment it adds, where it runs,
    directories to create first (the checkpoint directory), and a file the wrapper creates once the
    attempt has ended and its exit is recorded (`notify`, empty for none: see `_wrapper`)."""

    dir: str
    log: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    mkdirs: list[str] = field(default_factory=list)
    notify: str = ""


class Spawner:
    """A long-lived `_wrapper.py --serve` process that starts one wrapper per request (see `_wrapper`):
    the compiled wrapper where it is built and `compiled` (the default), else a fork of itself.

    Started on first use and again if it died; `fence` makes its wrappers kill their task when it goes
    away (cluster agents). Thread-safe: one batch at a time. A batch is answered once its tasks have
    started, or after `await_start_s` (`_wrapper`, `serve`): the executor records the next round of
    attempts only then (`scheduling.ROUND_MAX`).

    The spawner leads its own process group (no terminal signal reaches it) but stays in the session
    of the process that starts it (the executor, or an agent), while each wrapper leads a session of
    its own. Where Linux groups CPU time by session (autogroup, on by default in many kernels), a
    session is one scheduling entity: a request handed from the executor to a spawner of the same
    session stays within it, where a spawner of its own session waited for a turn among the sessions
    of the tasks starting up (`benchmarks/executor_ray_bench.py`, 2 cores: a request's 2 ms of work
    took 37 to 50 ms, against a 4.8 ms median after; see docs/executor.md, *Measurements*).
    """

    _said_no_native = False  # the missing compiled wrapper is logged once per process

    def __init__(
        self,
        *,
        fence: bool = False,
        stderr: Path | None = None,
        await_start_s: float = AWAIT_START_S,
        compiled: bool = True,
    ) -> None:
        self.fence = fence
        self.stderr = stderr
        self.await_start_s = await_start_s
        # the compiled wrapper where it is built (`gpuplan.native.wrapper`), else forked Python wrappers
        self.native = native.wrapper() if compiled else None
        if compiled and self.native is None and not Spawner._said_no_native:
            Spawner._said_no_native = True
            log.warning("%s", native.WRAPPER_UNAVAILABLE)
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            err: IO[bytes] | int = subprocess.DEVNULL
            if self.stderr is not None:
                self.stderr.parent.mkdir(parents=True, exist_ok=True)
                err = open(self.stderr, "ab")  # noqa: SIM115 - handed to the child, closed below
            try:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-I",
                        WRAPPER,
                        "--serve",
                        *(["--fence"] if self.fence else []),
                        f"--await-start={self.await_start_s:g}",
                        *([f"--native={self.native}"] if self.native else []),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    process_group=0,  # its own group, its starter's session (class docstring)
                    close_fds=True,
                )
            finally:
                if not isinstance(err, int):
                    err.close()
        return self._proc

    def spawn(self, requests: list[LaunchRequest]) -> list[int | str]:
        """Start a wrapper per request; per request its pid, or why it could not start (text)."""
        if not requests:
            return []
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            payload = json.dumps([asdict(r) for r in requests]) + "\n"
            try:
                proc.stdin.write(payload.encode())
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise BrokenPipeError("the spawner exited")
                replies = json.loads(line)
            except (BrokenPipeError, OSError, ValueError) as exc:
                self.close()
                return [f"spawner failed: {exc}"] * len(requests)
            return [int(r["pid"]) if "pid" in r else str(r.get("error")) for r in replies]

    def close(self) -> None:
        """End the spawner (its wrappers keep running, unless fenced)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()

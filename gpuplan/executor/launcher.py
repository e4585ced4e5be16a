"""Start, observe and stop task attempts through the per-attempt wrapper (`_wrapper.py`).

Each attempt runs as `python -I _wrapper.py DIR LOG -- argv...` in a new session (its own process
group, so stopping it reaches the task and its children, and killing the executor leaves it running).
The wrapper's files in DIR are the ground truth a restarted executor reads: `claim` (who decided the
attempt's fate: the wrapper's pid, or `cancelled`), `started` and `exit` (the task's exit code).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WRAPPER = str(Path(__file__).with_name("_wrapper.py"))


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


def wrapper_alive(pid: int, attempt_dir: Path) -> bool:
    """True when `pid` is alive and is this attempt's wrapper (guards against pid reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
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

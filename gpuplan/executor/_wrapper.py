"""Per-attempt wrapper: claim the attempt, run the task's argv, record how it ended.

Run by path with only the standard library (fast start, no gpuplan import):

    python -I _wrapper.py ATTEMPT_DIR LOG_FILE -- ARGV...

1. Claim: create ATTEMPT_DIR/claim exclusively (O_CREAT | O_EXCL) holding this wrapper's pid. If the
   file exists, a restarted executor cancelled this attempt first: exit without running anything.
   The claim is the single point that decides whether an attempt runs, shared by wrapper and executor.
2. Start the task with stdout and stderr appended to LOG_FILE; write ATTEMPT_DIR/started.
3. Wait. SIGTERM reaches the task through the process group; the wrapper ignores it (a Python
   handler, reset on exec, so the task keeps the default) to survive and record the exit code.
4. Write ATTEMPT_DIR/exit atomically (temporary file, fsync, rename): {"rc": code, "t": time}.
   A restarted executor learns from it how an orphaned attempt ended.
"""

import json
import os
import signal
import subprocess
import sys
import time


def _write_atomic(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    """Entry point; returns the wrapper's own exit code (the task's code is in the exit file)."""
    if len(argv) < 4 or argv[2] != "--":
        print("usage: _wrapper.py ATTEMPT_DIR LOG_FILE -- ARGV...", file=sys.stderr)
        return 2
    attempt_dir, log_path, command = argv[0], argv[1], argv[3:]
    try:
        fd = os.open(os.path.join(attempt_dir, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return 0  # cancelled by a restarted executor before this attempt started
    os.write(fd, json.dumps({"pid": os.getpid(), "t": time.time()}).encode())
    os.fsync(fd)
    os.close(fd)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    with open(log_path, "ab") as log:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.write(f"gpuplan: cannot start {command[0]!r}: {exc}\n".encode())
            _write_atomic(os.path.join(attempt_dir, "exit"), {"rc": 127, "t": time.time(), "error": str(exc)})
            return 0
        _write_atomic(os.path.join(attempt_dir, "started"), {"child_pid": child.pid, "t": time.time()})
        while True:
            try:
                rc = child.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
                continue
    _write_atomic(os.path.join(attempt_dir, "exit"), {"rc": rc, "t": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Queries on a run from outside its executor: status (read the journal) and stop (flag and signal).

Safe while the executor runs: SQLite WAL readers do not block the writer.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from gpuplan.executor.journal import Journal
from gpuplan.executor.state import ExecutorInputError


def status(state_dir: Path, events: int = 20) -> dict[str, Any]:
    """A run's status read from its journal (safe while the executor runs: WAL readers don't block)."""
    path = state_dir / "journal.sqlite"
    if not path.is_file():
        raise ExecutorInputError("--state-dir", f"no run in {state_dir} (no journal.sqlite)")
    j = Journal(path)
    try:
        pid = j.get("executor_pid")
        state = j.get("state", "unknown")
        alive = bool(pid) and _pid_alive(int(pid)) and state == "running"
        tasks = []
        counts: dict[str, int] = {}
        for r in j.exec("SELECT * FROM tasks ORDER BY ord").fetchall():
            n = j.exec("SELECT COUNT(*) FROM attempts WHERE task=?", (r["id"],)).fetchone()[0]
            tasks.append(
                {
                    "task": r["id"],
                    "state": r["state"],
                    "gpus": json.loads(r["gpus"]),
                    "attempts": n,
                    "failures": r["failures"],
                    "moves": r["moves"],
                    "reason": r["reason"],
                }
            )
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        gpus = [
            {"gpu": r["id"], "state": r["state"], "reason": r["reason"]}
            for r in j.exec("SELECT * FROM gpus ORDER BY id").fetchall()
        ]
        leases = {
            r["state"]: r["n"]
            for r in j.exec("SELECT state, COUNT(*) AS n FROM leases GROUP BY state").fetchall()
        }
        return {
            "state_dir": str(state_dir),
            "plan": j.get("plan_hash"),
            "state": state,
            "executor_pid": pid,
            "executor_alive": alive,
            "counts": counts,
            "leases": leases,
            "excluded_gpus": gpus,
            "tasks": tasks,
            "events": j.events(limit=events),
        }
    finally:
        j.close()


def request_stop(state_dir: Path) -> dict[str, Any]:
    """Ask a running executor to stop (journal flag, then SIGTERM to its pid)."""
    path = state_dir / "journal.sqlite"
    if not path.is_file():
        raise ExecutorInputError("--state-dir", f"no run in {state_dir} (no journal.sqlite)")
    j = Journal(path)
    try:
        with j.tx():
            j.set("stop_requested", True)
            j.event("stop", "stop requested by `gpuplan stop`")
        pid = j.get("executor_pid")
        state = j.get("state")
    finally:
        j.close()
    signalled = False
    if pid and state == "running" and _pid_alive(int(pid)):
        try:
            os.kill(int(pid), signal.SIGTERM)
            signalled = True
        except ProcessLookupError:
            pass
    return {"state_dir": str(state_dir), "executor_pid": pid, "signalled": signalled, "state": state}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


__all__ = ["request_stop", "status"]

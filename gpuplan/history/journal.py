"""Read a run's state directory without writing to it: the journal (SQLite, opened read-only) and
the run's settings, problem and plan stored in its `meta` table.

The executor owns the journal's schema (`gpuplan/executor/journal.py`); this reader depends only on
the columns it names here, and never opens the file for writing (a running executor keeps going).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuplan.errors import InputError

#: Columns read from the journal's `attempts` table.
ATTEMPT_COLUMNS = ("id", "task", "n", "gpus", "state", "t_start", "t_running", "t_end", "exit_code", "reason")


@dataclass
class RunJournal:
    """What the history needs from one run: meta values, tasks, attempts and events (all as read)."""

    state_dir: Path
    meta: dict[str, Any]
    tasks: list[dict[str, Any]]
    attempts: list[tuple[Any, ...]]
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def epoch(self) -> float:
        """Wall time (s) the run started: time zero of its planned hours."""
        return float(self.meta.get("epoch") or 0.0)

    @property
    def hour_s(self) -> float:
        """Wall-clock seconds per planned hour (the executor's `--hour-seconds`)."""
        return float((self.meta.get("settings") or {}).get("hour_s", 3600.0))


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`): the reader can never change a run."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    db.row_factory = sqlite3.Row
    return db


def read_journal(state_dir: Path, *, events: bool = True) -> RunJournal:
    """Read one run's journal; an argument that is no state directory is an InputError naming it."""
    path = state_dir / "journal.sqlite"
    if not state_dir.is_dir():
        raise InputError(str(state_dir), "no such state directory")
    if not path.is_file():
        raise InputError(str(state_dir), "no run here (no journal.sqlite)")
    try:
        db = _connect(path)
        try:
            meta = {r["key"]: json.loads(r["value"]) for r in db.execute("SELECT key, value FROM meta")}
            task_cols = {r["name"] for r in db.execute("PRAGMA table_info(tasks)")}
            planned = ", start_h, end_h, node" if {"start_h", "end_h", "node"} <= task_cols else ""
            tasks = [dict(r) for r in db.execute(f"SELECT id, ord, state, gpus, reason{planned} FROM tasks")]
            attempts = [
                tuple(r) for r in db.execute(f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts ORDER BY id")
            ]
            evs: list[dict[str, Any]] = []
            if events:
                for r in db.execute("SELECT t, kind, task, gpu, reason, data FROM events ORDER BY id"):
                    ev = {k: r[k] for k in ("t", "kind", "task", "gpu", "reason") if r[k] is not None}
                    if r["data"]:
                        ev["data"] = json.loads(r["data"])
                    evs.append(ev)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(str(path), f"not a readable gpuplan journal ({exc})") from None
    if "epoch" not in meta:
        raise InputError(str(path), "the journal holds no run (no epoch in its meta table)")
    return RunJournal(state_dir=state_dir, meta=meta, tasks=tasks, attempts=attempts, events=evs)


__all__ = ["ATTEMPT_COLUMNS", "RunJournal", "read_journal"]

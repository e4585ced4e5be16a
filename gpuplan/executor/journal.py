"""The executor's journal: SQLite in WAL mode, the single source of truth for a run.

Tables: `meta` (the run: problem, plan, commands, settings, state), `tasks` (one row per task: state,
GPUs, failures; node, planned start and end for a scheduled plan), `attempts` (one row per attempt:
state, pid, directory, exit code), `leases` (one row per GPU per attempt: allocated -> running ->
released | failed), `gpus` (excluded GPUs and why) and `events` (every decision with its reason).
Each state change is one transaction, committed with `synchronous=FULL` before the executor acts on
it (an attempt is recorded as `starting` before its process is spawned), so a killed executor finds
on restart everything it had decided.

A transaction whose content a restarted executor can learn again from the wrapper files (an attempt
`running` with its pid, read back from its claim) may be committed lazily, `tx(durable=False)`: the
commit is written to the WAL (so it survives the executor's death: it is in the kernel's page cache)
but not fsynced, which costs a write instead of a wait for the disk. A power loss can lose it, and
only it and lazy commits after it: the WAL is replayed up to its first torn frame, and the next
durable commit fsyncs every frame before its own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, ord INTEGER NOT NULL, state TEXT NOT NULL, gpus TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0, moves INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL, start_h REAL, end_h REAL, node TEXT);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, n INTEGER NOT NULL, gpus TEXT NOT NULL,
    state TEXT NOT NULL, pid INTEGER, dir TEXT NOT NULL, log TEXT NOT NULL, t_start REAL NOT NULL,
    t_running REAL, t_end REAL, exit_code INTEGER, reason TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS attempts_task ON attempts(task);
CREATE INDEX IF NOT EXISTS attempts_state ON attempts(state);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, gpu TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL,
    state TEXT NOT NULL, t_allocated REAL NOT NULL, t_running REAL, t_end REAL);
CREATE INDEX IF NOT EXISTS leases_attempt ON leases(attempt);
CREATE TABLE IF NOT EXISTS gpus (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, t REAL NOT NULL, kind TEXT NOT NULL, task TEXT, gpu TEXT,
    reason TEXT NOT NULL, data TEXT);
"""

#: Task columns added after the first schema (name, SQL type): the planned times (hours from the run's
#: start) and the node of a scheduled plan.
TASK_COLUMNS_ADDED = (("start_h", "REAL"), ("end_h", "REAL"), ("node", "TEXT"))

#: Attempt columns added since (name, SQL type): the site (node) the attempt runs on.
ATTEMPT_COLUMNS_ADDED = (("node", "TEXT"),)

#: Attempt states in which a process may exist.
LIVE_ATTEMPT_STATES = ("starting", "running", "stopping")


class Journal:
    """A run's journal at `path`; `tx()` groups writes into one durable transaction."""

    def __init__(self, path: Path, *, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.db.executescript(SCHEMA)
        self._add_columns()
        self.on_event = on_event
        self._pending: list[dict[str, Any]] = []
        self._depth = 0
        self._durable = True

    def _add_columns(self) -> None:
        """Give an older journal the columns added since (a resumed old run reads them as NULL: no
        planned times, an unscheduled plan, attempts on the local site)."""
        for table, added in (("tasks", TASK_COLUMNS_ADDED), ("attempts", ATTEMPT_COLUMNS_ADDED)):
            have = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})").fetchall()}
            for name, kind in added:
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[None]:
        """One transaction (nested calls join the outer one); events are published after commit.

        `durable=False` commits without an fsync (module docstring): only for writes a restarted
        executor can recover from the wrapper files. A durable transaction cannot join a lazy one
        (SQLite fixes a commit's safety level before the transaction begins): that raises.
        """
        if self._depth:
            if durable and not self._durable:
                raise RuntimeError("a durable journal transaction cannot join a lazy (durable=False) one")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if not durable:
            self.db.execute("PRAGMA synchronous=NORMAL")
        self._durable = durable
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                self._pending.clear()
                raise
            finally:
                self._depth = 0
            self.db.execute("COMMIT")
        finally:
            if not durable:
                if self.db.in_transaction:  # the COMMIT itself failed: the safety level can't change inside
                    self.db.execute("ROLLBACK")
                self.db.execute("PRAGMA synchronous=FULL")
                self._durable = True
        pending, self._pending = self._pending, []
        if self.on_event:
            for ev in pending:
                self.on_event(ev)

    def exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Execute one statement (inside or outside a transaction)."""
        return self.db.execute(sql, args)

    # meta -----------------------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """A meta value (JSON-decoded)."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def set(self, key: str, value: Any) -> None:
        """Store a meta value (JSON-encoded)."""
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, json.dumps(value)),
        )

    # events ---------------------------------------------------------------------------------------
    def event(
        self,
        kind: str,
        reason: str,
        *,
        task: str | None = None,
        gpu: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record a decision and its reason (published to `on_event` after the commit)."""
        t = time.time()
        self.db.execute(
            "INSERT INTO events(t, kind, task, gpu, reason, data) VALUES(?, ?, ?, ?, ?, ?)",
            (t, kind, task, gpu, reason, None if data is None else json.dumps(data)),
        )
        ev: dict[str, Any] = {"t": round(t, 6), "kind": kind, "reason": reason}
        if task is not None:
            ev["task"] = task
        if gpu is not None:
            ev["gpu"] = gpu
        if data:
            ev["data"] = data
        if self._depth:
            self._pending.append(ev)
        elif self.on_event:
            self.on_event(ev)

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Events, oldest first (the last `limit` when given)."""
        sql = "SELECT * FROM events ORDER BY id"
        rows = self.db.execute(sql).fetchall()
        if limit is not None:
            rows = rows[-limit:]
        out = []
        for r in rows:
            ev = {k: r[k] for k in ("t", "kind", "task", "gpu", "reason") if r[k] is not None}
            if r["data"]:
                ev["data"] = json.loads(r["data"])
            out.append(ev)
        return out

"""The executor's in-memory state and the journal writes every part of it shares.

`ExecutorBase` declares what the Executor holds (journal, tasks, devices, excluded GPUs) and the
helpers that record a task's or an attempt's new state (call them inside a journal transaction).
The Executor's concerns are mixins over it: `recovery`, `scheduling`, `lifecycle`, `health`,
`replanning`; `runner` puts them together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gpuplan.executor.devices import DeviceBackend, DeviceInfo
from gpuplan.executor.journal import Journal
from gpuplan.executor.sites import Site
from gpuplan.executor.spec import RunSpec, Settings
from gpuplan.models import Problem, Task

TERMINAL_TASK_STATES = ("done", "failed", "skipped")

EXIT_DONE, EXIT_TASKS_FAILED, EXIT_STOPPED = 0, 3, 4


class ExecutorInputError(Exception):
    """Input the executor cannot run (names the field and the value, one line)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass
class Attempt:
    """A live attempt, in memory (the journal row is the truth)."""

    id: int
    task: str
    n: int
    gpus: list[str]
    state: str
    dir: Path
    log: Path
    pid: int | None = None
    t_start: float = 0.0
    node: str = ""  # the site (machine) it runs on
    checked: float = 0.0  # when its wrapper was last seen alive (monotonic)


@dataclass
class TaskState:
    """A task, in memory: state, planned GPUs, failures so far, live attempt."""

    id: str
    ord: int
    state: str
    gpus: list[str]
    failures: int = 0
    moves: int = 0
    reason: str = ""
    attempt: Attempt | None = None
    share: float = 1.0
    memory_gb: float = 0.0
    priority: int = 0
    cpu_only: bool = False  # gpus 0: placed with no GPU (an empty `gpus` is its placement)
    # scheduled plans: planned start and end in hours from the run's start (None: no planned time),
    # the node the plan put it on, its precedences and release (see `scheduling`)
    start_h: float | None = None
    end_h: float | None = None
    node: str | None = None
    after: tuple[str, ...] = ()
    release_h: float = 0.0
    uses_node: bool = False  # takes CPU cores or host memory, or has an anti-affinity group

    @property
    def placed(self) -> bool:
        """Whether the plan gave the task where to run (GPUs, or none for a CPU-only task)."""
        return bool(self.gpus) or self.cpu_only


@dataclass
class RunResult:
    """How a run ended."""

    state: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "exit_code": self.exit_code, "counts": self.counts, "tasks": self.tasks}


class ExecutorBase:
    """What the Executor holds, and the journal helpers its mixins share."""

    state_dir: Path
    cwd: str
    problem: Problem
    spec: RunSpec
    settings: Settings
    progress: Callable[[str], None] | None
    journal: Journal
    backend: DeviceBackend
    devices: list[DeviceInfo]
    sites: dict[str, Site]
    device_of: dict[str, DeviceInfo]
    gpu_of_device: dict[str, str]
    remote: set[str]
    resumed: bool
    _tasks_by_id: dict[str, Task]
    tasks: dict[str, TaskState]
    excluded: dict[str, tuple[str, str]]
    epoch: float
    _gpu_memory: dict[str, float]
    _ecc_base: dict[str, int]
    _replan_needed: bool
    _metrics_fh: IO[str]

    if TYPE_CHECKING:  # provided by the mixins; declared here so each mixin can call the others

        def _stop_attempts(
            self, attempts: list[Attempt], reason: str, *, requeue: bool, fault: bool = False
        ) -> None: ...

        def _start_many(self, tasks: list[TaskState]) -> None: ...

        def _site_of(self, task: TaskState) -> str: ...

        def _replan(self, why: str) -> None: ...

    def counts(self) -> dict[str, int]:
        """Number of tasks per state."""
        out: dict[str, int] = {}
        for t in self.tasks.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out

    # journal helpers (call inside a transaction) --------------------------------------------------
    def _set_task(self, task: TaskState, state: str, reason: str = "") -> None:
        task.state, task.reason = state, reason
        if state not in ("starting", "running", "stopping"):
            task.attempt = None
        self.journal.exec(
            "UPDATE tasks SET state=?, gpus=?, failures=?, moves=?, reason=?, updated=?, start_h=?, end_h=?,"
            " node=? WHERE id=?",
            (
                state,
                json.dumps(task.gpus),
                task.failures,
                task.moves,
                reason,
                time.time(),
                task.start_h,
                task.end_h,
                task.node,
                task.id,
            ),
        )

    def _set_times(self, task: TaskState, start_h: float | None, end_h: float | None) -> None:
        """Record a task's planned start and end (hours from the run's start) and its node, without
        changing its state."""
        task.start_h, task.end_h = start_h, end_h
        self.journal.exec(
            "UPDATE tasks SET start_h=?, end_h=?, node=? WHERE id=?", (start_h, end_h, task.node, task.id)
        )

    def _mark_running(self, a: Attempt) -> None:
        now = time.time()
        a.state = "running"
        self.journal.exec(
            "UPDATE attempts SET state='running', pid=?, t_running=? WHERE id=?", (a.pid, now, a.id)
        )
        self.journal.exec("UPDATE leases SET state='running', t_running=? WHERE attempt=?", (now, a.id))
        self._set_task(self.tasks[a.task], "running")

    def _end_attempt(
        self, a: Attempt, state: str, rc: int | None, reason: str, *, lease: str | None = None
    ) -> None:
        now = time.time()
        a.state = state
        self.journal.exec(
            "UPDATE attempts SET state=?, t_end=?, exit_code=?, reason=? WHERE id=?",
            (state, now, rc, reason, a.id),
        )
        if lease is None:
            lease = "released" if state in ("succeeded", "stopped", "cancelled") else "failed"
        self.journal.exec("UPDATE leases SET state=?, t_end=? WHERE attempt=?", (lease, now, a.id))

    def _waiting(self) -> list[TaskState]:
        return [t for t in self.tasks.values() if t.state == "waiting"]


__all__ = [
    "EXIT_DONE",
    "EXIT_STOPPED",
    "EXIT_TASKS_FAILED",
    "TERMINAL_TASK_STATES",
    "Attempt",
    "ExecutorBase",
    "ExecutorInputError",
    "RunResult",
    "TaskState",
]

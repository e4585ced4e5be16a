"""The executor: apply a plan on this machine, or on the nodes of a cluster, and keep it true while it runs.

One loop, single-threaded: reap finished attempts (exit codes, retries), sample the GPUs (metrics
file, fault and heat events), handle faults (stop the tasks on the GPU, re-plan the unfinished
work with it excluded, restart the moved tasks), and start queued tasks whose GPUs have room. Every
state change is a journal transaction committed before the executor acts on it; see
docs/executor.md for the crash-safety argument.

The loop lives here; each concern is a mixin in its own module: `recovery` (resume from the
journal), `scheduling` (what to launch next), `lifecycle` (launch, wait, stop, exit codes), `health`
(device readings, faults and heat), `replanning` (re-plan and apply); `queries` answers `status` and
`stop` from outside, `state` holds the shared state and journal helpers.

Task states: queued -> starting -> running -> done | failed, with `waiting` (no GPU after a
re-plan), `skipped` (left out by the plan) and back to `queued` after a stop or a retry.
Attempt states: starting -> running -> succeeded | failed | stopped | lost (| cancelled, | stopping).
Lease states: allocated -> running -> released | failed (one row per GPU per attempt).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuplan.executor.agent import Heat
from gpuplan.executor.devices import DeviceBackend, DeviceInfo
from gpuplan.executor.health import COOL_MARGIN_C, FATAL_XIDS, HealthMixin
from gpuplan.executor.journal import Journal
from gpuplan.executor.lifecycle import LifecycleMixin
from gpuplan.executor.queries import request_stop, status
from gpuplan.executor.recovery import RecoveryMixin
from gpuplan.executor.replanning import ReplanningMixin
from gpuplan.executor.scheduling import SchedulingMixin
from gpuplan.executor.sites import LocalSite, Site
from gpuplan.executor.spec import RunSpec, Settings
from gpuplan.executor.state import (
    EXIT_DONE,
    EXIT_STOPPED,
    EXIT_TASKS_FAILED,
    TERMINAL_TASK_STATES,
    Attempt,
    ExecutorBase,
    ExecutorInputError,
    RunResult,
    TaskState,
)
from gpuplan.models import Plan, Problem


def plan_hash(problem: Problem, plan: Plan, spec: RunSpec) -> str:
    """Identity of a run: same problem, plan and commands -> same run (resume)."""
    h = hashlib.sha256()
    for part in (
        problem.model_dump_json(),
        plan.model_dump_json(include={"assignments"}),
        spec.model_dump_json(),
    ):
        h.update(part.encode())
    return h.hexdigest()[:16]


class Executor(RecoveryMixin, SchedulingMixin, LifecycleMixin, HealthMixin, ReplanningMixin, ExecutorBase):
    """Runs one plan from a state directory (journal, logs, metrics, attempt files)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        problem: Problem,
        plan: Plan,
        spec: RunSpec,
        settings: Settings,
        backend_factory: Callable[[float], DeviceBackend],
        cwd: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.problem, self.plan, self.spec, self.settings = problem, plan, spec, settings
        self.progress = progress
        self._lock_fh = self._lock()
        self._events_fh = open(self.state_dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.journal = Journal(self.state_dir / "journal.sqlite", on_event=self._publish)
        self.hash = plan_hash(problem, plan, spec)
        existing = self.journal.get("plan_hash")
        if existing is not None and existing != self.hash:
            self.close()
            raise ExecutorInputError(
                "--state-dir",
                f"{self.state_dir} holds another run (plan {existing}); use another --state-dir or remove it",
            )
        self.resumed = existing is not None
        if self.resumed:
            settings = self._journaled_settings(settings)
            self.settings = settings
        now = time.time()
        self.epoch = float(self.journal.get("epoch", now))
        self.cwd = self.journal.get("cwd") or str(Path(cwd or os.getcwd()).resolve())
        self.backend = backend_factory(self.epoch)
        monitor = getattr(self.backend, "monitor", None)
        if callable(monitor):  # a cluster: its agents sample and send readings with their watches
            limit = problem.temperature_limit_c
            monitor(settings.sample_interval_s, None if limit is None else Heat(limit, limit - COOL_MARGIN_C))
        self.devices: list[DeviceInfo] = self.backend.discover()
        cluster_sites = getattr(self.backend, "sites", None)
        self.sites: dict[str, Site]
        if callable(cluster_sites):
            self.sites = cluster_sites()
        else:  # this machine; its wrappers announce their ends in `ended` (sites, *Announced ends*)
            log, ended = self.state_dir / "spawner.log", self.state_dir / "ended"
            self.sites = {"": LocalSite("", spawner_log=log, ended=ended)}
        self._map_devices()
        self._tasks_by_id = {t.id: t for t in problem.tasks}
        self._gpu_memory = {g.id: problem.gpu_type(g.type).memory_gb for _, g in problem.all_gpus()}
        self.tasks: dict[str, TaskState] = {}
        self.excluded: dict[str, tuple[str, str]] = {}
        self._ecc_base: dict[str, int] = {}
        self._replan_needed = False
        self._stop_requested = False
        self._last_sample = 0.0
        self._metrics_fh = open(self.state_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if self.resumed:
            self._load()
        else:
            try:
                self._validate()
            except ExecutorInputError:
                self._release_agents()  # nothing started: a cluster's agents are not needed
                self.close()
                raise
            self._create(now)

    # setup ----------------------------------------------------------------------------------------
    def _lock(self) -> Any:
        fh = open(self.state_dir / "executor.lock", "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise ExecutorInputError(
                "--state-dir", f"another executor (pid {holder}) is running in {self.state_dir}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def _journaled_settings(self, given: Settings) -> Settings:
        """On resume, the run's time scale (`hour_s`) is the journaled one: planned times and releases
        were recorded against it. The other knobs may change between runs."""
        stored = self.journal.get("settings") or {}
        hour_s = stored.get("hour_s")
        if hour_s is None or float(hour_s) == given.hour_s:
            return given
        if given.hour_s != Settings().hour_s:
            self.close()
            raise ExecutorInputError(
                "--hour-seconds",
                f"{given.hour_s:g} differs from the {float(hour_s):g} this run was started with; "
                "leave it out to resume",
            )
        return given.model_copy(update={"hour_s": float(hour_s)})

    def _map_devices(self) -> None:
        """Plan GPU id -> device (by device id or UUID); device id -> plan GPU id."""
        by_key: dict[str, DeviceInfo] = {}
        for d in self.devices:
            by_key[d.id] = d
            by_key[d.uuid] = d
        self.device_of: dict[str, DeviceInfo] = {}
        self.gpu_of_device: dict[str, str] = {}
        for _, g in self.problem.all_gpus():
            d = by_key.get(g.id)
            if d is not None:
                self.device_of[g.id] = d
                self.gpu_of_device[d.id] = g.id
        self.remote = {g.id for _, g in self.problem.all_gpus()} - set(self.device_of)

    def _validate(self) -> None:
        if not self.plan.status.has_solution:
            raise ExecutorInputError(
                "plan.status", f"{self.plan.status.value!r}: the plan has no solution to run"
            )
        known_gpus = {g.id for _, g in self.problem.all_gpus()}
        listed: set[str] = set()  # each task once, placed or not (the journal keys its rows by task)
        rows = [("assignments", i, a.task) for i, a in enumerate(self.plan.assignments)]
        rows += [("unassigned", i, u.task) for i, u in enumerate(self.plan.unassigned)]
        for where, i, task in rows:
            if task in listed:
                raise ExecutorInputError(
                    f"plan.{where}[{i}].task", f"task {task!r} appears twice in the plan"
                )
            listed.add(task)
        node_of_gpu = {g.id: n.id for n, g in self.problem.all_gpus()}
        clustered = any(d.node for d in self.devices) or len(self.sites) > 1
        for i, a in enumerate(self.plan.assignments):
            if clustered and a.node is not None and a.node not in self.sites:
                have = ", ".join(sorted(self.sites)[:8])
                raise ExecutorInputError(
                    f"plan.assignments[{i}].node", f"node {a.node!r} is not in the cluster (nodes: {have})"
                )
            if a.task not in self._tasks_by_id:
                raise ExecutorInputError(
                    f"plan.assignments[{i}].task", f"task {a.task!r} is not in the problem"
                )
            if a.task not in self.spec.tasks:
                raise ExecutorInputError("commands.tasks", f"no command for task {a.task!r}")
            for k, gid in enumerate(a.gpus):
                if gid not in known_gpus:
                    raise ExecutorInputError(
                        f"plan.assignments[{i}].gpus[{k}]", f"GPU {gid!r} is not in the problem"
                    )
                if gid not in self.device_of:
                    where = f"node {node_of_gpu.get(gid)!r}" if clustered else "this machine"
                    on = [d.id for d in self.devices if not clustered or d.node == node_of_gpu.get(gid)]
                    raise ExecutorInputError(
                        f"plan.assignments[{i}].gpus[{k}]",
                        f"GPU {gid!r} is not on {where} (devices: {', '.join(on[:8]) or 'none'})",
                    )
                dev_node = self.device_of[gid].node
                if clustered and dev_node != node_of_gpu.get(gid):
                    raise ExecutorInputError(
                        f"plan.assignments[{i}].gpus[{k}]",
                        f"GPU {gid!r} is on node {dev_node!r}, not on {node_of_gpu.get(gid)!r} "
                        "as the problem says",
                    )

    def _create(self, now: float) -> None:
        j = self.journal
        with j.tx():
            j.set("plan_hash", self.hash)
            j.set("epoch", now)
            j.set("cwd", self.cwd)
            j.set("problem", self.problem.model_dump(mode="json"))
            j.set("plan", self.plan.model_dump(mode="json"))
            j.set("spec", self.spec.model_dump(mode="json"))
            j.set("settings", self.settings.model_dump(mode="json"))
            j.set("state", "running")
            by_task = {a.task: a for a in self.plan.assignments}
            order = [a.task for a in self.plan.assignments] + [u.task for u in self.plan.unassigned]
            reasons = {u.task: u.reason for u in self.plan.unassigned}
            for k, tid in enumerate(order):
                a = by_task.get(tid)
                state = "queued" if a is not None else "skipped"
                j.exec(
                    "INSERT INTO tasks(id, ord, state, gpus, reason, updated, start_h, end_h, node)"
                    " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tid,
                        k,
                        state,
                        json.dumps(a.gpus if a else []),
                        reasons.get(tid, ""),
                        now,
                        a.start_h if a else None,
                        a.end_h if a else None,
                        a.node if a else None,
                    ),
                )
                if state == "skipped":
                    j.event("skip", f"left out by the plan: {reasons[tid]}", task=tid)
            for gid in sorted(self.remote):
                j.exec("INSERT INTO gpus(id, state, reason, t) VALUES(?, ?, ?, ?)", (gid, "remote", "", now))
            where = f"GPUs of {len(self.sites)} nodes" if len(self.sites) > 1 else "local GPUs"
            j.event(
                "run",
                f"plan {self.hash}: {len(by_task)} tasks on {len(self.device_of)} {where} "
                f"({self.backend.name} backend)",
            )
        self._load()

    # events and progress --------------------------------------------------------------------------
    def _publish(self, ev: dict[str, Any]) -> None:
        self._events_fh.write(json.dumps(ev) + "\n")
        self._events_fh.flush()
        if self.progress:
            counts = self.counts()
            who = " ".join(x for x in (ev.get("task"), ev.get("gpu")) if x)
            self.progress(
                f"{ev['kind']:<8} {who} {ev['reason']}  [done {counts.get('done', 0)}/{len(self.tasks)}, "
                f"running {counts.get('running', 0) + counts.get('starting', 0)}, "
                f"failed {counts.get('failed', 0)}]"
            )

    # the loop -------------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        """Ask the loop to stop every task and end (signal handler, or `gpuplan stop` via the journal)."""
        self._stop_requested = True

    def _stop_flagged(self) -> bool:
        if self._stop_requested:
            return True
        return bool(self.journal.get("stop_requested", False))

    def run(self, *, install_signals: bool = False, max_s: float | None = None) -> RunResult:
        """Run until every task is done, failed or skipped, or a stop is requested."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        j = self.journal
        with j.tx():
            j.set("executor_pid", os.getpid())
        s = self.settings
        started = time.monotonic()
        last_stop_check = 0.0
        try:
            if self._needs_placement():
                self._replan("tasks without a usable GPU after restart")
            while True:
                now = time.monotonic()
                if now - last_stop_check >= min(0.25, s.poll_interval_s * 5) or self._stop_requested:
                    last_stop_check = now
                    if self._stop_flagged():
                        return self._shutdown("stop requested")
                if max_s is not None and now - started > max_s:
                    return self._shutdown(f"ran longer than {max_s:g} s")
                self._reap()  # first: polling a cluster's nodes takes their watches, and with them readings
                if now - self._last_sample >= s.sample_interval_s or getattr(self.backend, "urgent", False):
                    self._last_sample = now
                    self._sample()
                if self._replan_needed or self._needs_placement():
                    self._replan("capacity changed with tasks waiting")
                busy = self._schedule()
                live = [
                    t for t in self.tasks.values() if t.state in ("queued", "starting", "running", "stopping")
                ]
                if not live:
                    waiting = self._waiting()
                    if not waiting:
                        return self._finish()
                    with j.tx():
                        for t in waiting:
                            self._set_task(t, "failed", f"no healthy GPU can take it: {t.reason}")
                            j.event("failed", f"no healthy GPU can take it: {t.reason}", task=t.id)
                    continue
                if not busy:
                    time.sleep(s.poll_interval_s)
        finally:
            self._metrics_fh.flush()

    def _shutdown(self, reason: str) -> RunResult:
        live = [t.attempt for t in self.tasks.values() if t.attempt is not None]
        if live:
            self._stop_attempts(live, reason, requeue=True)
        with self.journal.tx():
            self.journal.set("state", "stopped")
            self.journal.event(
                "stopped", f"{reason}: {len(live)} running task(s) stopped, the rest stay queued"
            )
        self._release_agents()
        return self.result("stopped")

    def _release_agents(self) -> None:
        """The run ended (finished or stopped): a cluster backend may now end its node agents."""
        end = getattr(self.backend, "end_run", None)
        if callable(end):
            end()

    def _finish(self) -> RunResult:
        counts = self.counts()
        state = "finished"
        with self.journal.tx():
            self.journal.set("state", state)
            self.journal.event(
                "finish",
                f"{counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
                f"{counts.get('skipped', 0)} skipped",
            )
        self._release_agents()
        return self.result(state)

    def result(self, state: str) -> RunResult:
        """The run's outcome with per-task states."""
        counts = self.counts()
        if state == "stopped":
            code = EXIT_STOPPED
        else:
            code = EXIT_TASKS_FAILED if counts.get("failed", 0) else EXIT_DONE
        rows = self.journal.exec("SELECT task, COUNT(*) AS n FROM attempts GROUP BY task").fetchall()
        attempts = {r["task"]: r["n"] for r in rows}
        tasks = {
            t.id: {
                "state": t.state,
                "gpus": t.gpus,
                "attempts": attempts.get(t.id, 0),
                "failures": t.failures,
                "moves": t.moves,
                "reason": t.reason,
            }
            for t in self.tasks.values()
        }
        return RunResult(state=state, exit_code=code, counts=counts, tasks=tasks)

    def close(self) -> None:
        """Release the backend, files and the state-directory lock (running tasks keep running)."""
        closers = [lambda site=site: site.close() for site in getattr(self, "sites", {}).values()]
        for closer in (
            *closers,
            lambda: self.backend.close(),
            lambda: self.journal.close(),
            lambda: self._metrics_fh.close(),
            lambda: self._events_fh.close(),
            lambda: self._lock_fh.close(),
        ):
            with contextlib.suppress(Exception):
                closer()


def progress_to_stderr(line: str) -> None:
    """Progress printer for the CLI."""
    sys.stderr.write(f"gpuplan run: {line}\n")
    sys.stderr.flush()


__all__ = [
    "COOL_MARGIN_C",
    "EXIT_DONE",
    "EXIT_STOPPED",
    "EXIT_TASKS_FAILED",
    "FATAL_XIDS",
    "TERMINAL_TASK_STATES",
    "Attempt",
    "Executor",
    "ExecutorInputError",
    "RunResult",
    "TaskState",
    "plan_hash",
    "progress_to_stderr",
    "request_stop",
    "status",
]

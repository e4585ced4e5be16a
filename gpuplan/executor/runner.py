"""The executor: apply a plan on this machine and keep it true while it runs.

One loop, single-threaded: sample the GPUs (metrics file, fault and heat events), reap finished
attempts (exit codes, retries), handle faults (stop the tasks on the GPU, re-plan the unfinished
work with it excluded, restart the moved tasks), and start queued tasks whose GPUs have room. Every
state change is a journal transaction committed before the executor acts on it; see
docs/executor.md for the crash-safety argument.

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
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuplan.executor import launcher
from gpuplan.executor.devices import DeviceBackend, DeviceInfo, Reading
from gpuplan.executor.journal import LIVE_ATTEMPT_STATES, Journal
from gpuplan.executor.spec import RunSpec, Settings
from gpuplan.models import Plan, Problem

#: XID codes that mean the GPU itself is unusable (double-bit ECC, fallen off the bus, row-remap
#: failure, NVLink, uncontained ECC, GSP errors); other XIDs (application faults) are logged only.
FATAL_XIDS = frozenset({48, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120})
#: An overheated GPU is used again once it is this many degrees under the limit.
COOL_MARGIN_C = 5.0

TERMINAL_TASK_STATES = ("done", "failed", "skipped")

EXIT_DONE, EXIT_TASKS_FAILED, EXIT_STOPPED = 0, 3, 4


class ExecutorInputError(Exception):
    """Input the executor cannot run (names the field and the value, one line)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


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
    proc: subprocess.Popen[bytes] | None = None
    t_start: float = 0.0


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


@dataclass
class RunResult:
    """How a run ended."""

    state: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "exit_code": self.exit_code, "counts": self.counts, "tasks": self.tasks}


class Executor:
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
        now = time.time()
        self.epoch = float(self.journal.get("epoch", now))
        self.cwd = self.journal.get("cwd") or str(Path(cwd or os.getcwd()).resolve())
        self.backend = backend_factory(self.epoch)
        self.devices: list[DeviceInfo] = self.backend.discover()
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
            self._validate()
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
        for i, a in enumerate(self.plan.assignments):
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
                    have = ", ".join(d.id for d in self.devices[:8])
                    raise ExecutorInputError(
                        f"plan.assignments[{i}].gpus[{k}]",
                        f"GPU {gid!r} is not on this machine (devices: {have})",
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
            placed = {a.task: a.gpus for a in self.plan.assignments}
            order = [a.task for a in self.plan.assignments] + [u.task for u in self.plan.unassigned]
            reasons = {u.task: u.reason for u in self.plan.unassigned}
            for k, tid in enumerate(order):
                state = "queued" if tid in placed else "skipped"
                j.exec(
                    "INSERT INTO tasks(id, ord, state, gpus, reason, updated) VALUES(?, ?, ?, ?, ?, ?)",
                    (tid, k, state, json.dumps(placed.get(tid, [])), reasons.get(tid, ""), now),
                )
                if state == "skipped":
                    j.event("skip", f"left out by the plan: {reasons[tid]}", task=tid)
            for gid in sorted(self.remote):
                j.exec("INSERT INTO gpus(id, state, reason, t) VALUES(?, ?, ?, ?)", (gid, "remote", "", now))
            j.event(
                "run",
                f"plan {self.hash}: {len(placed)} tasks on {len(self.device_of)} local GPUs "
                f"({self.backend.name} backend)",
            )
        self._load()

    def _load(self) -> None:
        """Tasks and excluded GPUs from the journal; then reconcile attempts left by a previous run."""
        j = self.journal
        self.tasks = {}
        for r in j.exec("SELECT * FROM tasks ORDER BY ord").fetchall():
            t = self._tasks_by_id.get(r["id"])
            self.tasks[r["id"]] = TaskState(
                id=r["id"],
                ord=r["ord"],
                state=r["state"],
                gpus=json.loads(r["gpus"]),
                failures=r["failures"],
                moves=r["moves"],
                reason=r["reason"],
                share=t.gpu_share if t else 1.0,
                memory_gb=t.gpu_memory_gb if t else 0.0,
                priority=t.priority if t else 0,
            )
        self.excluded = {
            r["id"]: (r["state"], r["reason"])
            for r in j.exec("SELECT * FROM gpus WHERE state IN ('failed', 'hot')").fetchall()
        }
        if self.resumed:
            with j.tx():
                j.set("state", "running")
                j.set("stop_requested", False)
                j.event("resume", f"executor restarted (pid {os.getpid()}); reconciling attempts")
            self._reconcile()

    def _reconcile(self) -> None:
        """Learn how the attempts of a killed executor ended; adopt the ones still running.

        An attempt recorded `starting` may or may not have been spawned: whoever creates its claim
        file first decides (the wrapper runs it, or this executor cancels it), so it runs at most once.
        """
        j = self.journal
        rows = j.exec(
            f"SELECT * FROM attempts WHERE state IN ({','.join('?' * len(LIVE_ATTEMPT_STATES))})",
            LIVE_ATTEMPT_STATES,
        ).fetchall()
        to_stop: list[Attempt] = []
        for r in rows:
            a = Attempt(
                id=r["id"],
                task=r["task"],
                n=r["n"],
                gpus=json.loads(r["gpus"]),
                state=r["state"],
                dir=Path(r["dir"]),
                log=Path(r["log"]),
                pid=r["pid"],
                t_start=r["t_start"],
            )
            task = self.tasks[a.task]
            if launcher.cancel_if_unclaimed(a.dir):
                with j.tx():
                    self._end_attempt(
                        a, "cancelled", None, "never started: cancelled before its wrapper claimed it"
                    )
                    self._set_task(task, "queued", "re-queued after an executor restart")
                continue
            claim = launcher.read_claim(a.dir) or {}
            if claim.get("cancelled"):
                with j.tx():
                    self._end_attempt(a, "cancelled", None, "cancelled earlier")
                    self._set_task(task, "queued", "re-queued after an executor restart")
                continue
            a.pid = int(claim["pid"]) if "pid" in claim else a.pid
            task.attempt = a
            alive = launcher.read_exit(a.dir) is None and bool(a.pid) and launcher.wrapper_alive(a.pid, a.dir)
            if a.state == "stopping":
                if alive:
                    to_stop.append(a)
                    continue
                ex = launcher.read_exit(a.dir)
                with j.tx():
                    self._end_attempt(
                        a, "stopped", None if ex is None else int(ex["rc"]), "stopped (before restart)"
                    )
                    self._set_task(task, "queued", "stopped before an executor restart")
                continue
            if alive:
                with j.tx():
                    if a.state == "starting":
                        self._mark_running(a)
                    j.event("adopt", f"attempt {a.n} still running (pid {a.pid}); adopted", task=a.task)
            # finished ones are reaped by the loop like any other
        if to_stop:
            self._stop_attempts(to_stop, "stop resumed after an executor restart", requeue=True)

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
            "UPDATE tasks SET state=?, gpus=?, failures=?, moves=?, reason=?, updated=? WHERE id=?",
            (state, json.dumps(task.gpus), task.failures, task.moves, reason, time.time(), task.id),
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

    # starting tasks -------------------------------------------------------------------------------
    def _room(self) -> tuple[dict[str, float], dict[str, float]]:
        share: dict[str, float] = {}
        mem: dict[str, float] = {}
        for t in self.tasks.values():
            if t.attempt is not None:
                for g in t.attempt.gpus:
                    share[g] = share.get(g, 0.0) + t.share
                    mem[g] = mem.get(g, 0.0) + t.memory_gb
        return share, mem

    def _schedule(self) -> bool:
        """Start queued tasks, by priority then plan order, whose GPUs are usable and have room.

        Returns True when the time box ran out with tasks still to try (the loop then skips its sleep).
        """
        queued = [t for t in self.tasks.values() if t.state == "queued" and t.gpus]
        if not queued:
            return False
        share, mem = self._room()
        # time-boxed, so sampling (fault detection) keeps its pace while a large plan launches
        budget_end = time.monotonic() + max(
            self.settings.poll_interval_s, self.settings.sample_interval_s / 2
        )
        for t in sorted(queued, key=lambda t: (-t.priority, t.ord)):
            if time.monotonic() > budget_end:
                return True
            if any(g in self.excluded or g not in self.device_of for g in t.gpus):
                continue
            fits = all(
                share.get(g, 0.0) + t.share <= 1.0 + 1e-9
                and mem.get(g, 0.0) + t.memory_gb <= self._gpu_memory.get(g, float("inf")) + 1e-9
                for g in t.gpus
            )
            if not fits:
                continue
            self._start(t)
            for g in t.gpus:
                share[g] = share.get(g, 0.0) + t.share
                mem[g] = mem.get(g, 0.0) + t.memory_gb

    def _start(self, task: TaskState) -> None:
        """Record the attempt as starting (durably), then spawn its wrapper, then record it running."""
        j = self.journal
        run = self.spec.tasks[task.id]
        n = j.exec("SELECT COUNT(*) FROM attempts WHERE task=?", (task.id,)).fetchone()[0] + 1
        now = time.time()
        uuids = [self.device_of[g].uuid for g in task.gpus]
        with j.tx():
            cur = j.exec(
                "INSERT INTO attempts(task, n, gpus, state, dir, log, t_start)"
                " VALUES(?, ?, ?, 'starting', '', '', ?)",
                (task.id, n, json.dumps(task.gpus), now),
            )
            aid = int(cur.lastrowid or 0)
            adir = self.state_dir / "attempts" / f"{aid}-{uuid.uuid4().hex[:8]}"  # never reused
            log = self.state_dir / "logs" / f"{_safe(task.id)}.{n}.log"
            j.exec("UPDATE attempts SET dir=?, log=? WHERE id=?", (str(adir), str(log), aid))
            for g in task.gpus:
                j.exec(
                    "INSERT INTO leases(gpu, task, attempt, state, t_allocated)"
                    " VALUES(?, ?, ?, 'allocated', ?)",
                    (g, task.id, aid, now),
                )
            a = Attempt(
                id=aid,
                task=task.id,
                n=n,
                gpus=list(task.gpus),
                state="starting",
                dir=adir,
                log=log,
                t_start=now,
            )
            task.attempt = a
            self._set_task(task, "starting")
            j.event(
                "start",
                f"attempt {n} on {', '.join(task.gpus)} (CUDA_VISIBLE_DEVICES={','.join(uuids)})",
                task=task.id,
            )
        env = dict(os.environ)
        env.update(run.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
        env["GPUPLAN_TASK_ID"] = task.id
        env["GPUPLAN_ATTEMPT"] = str(n)
        cwd = str(Path(self.cwd, run.cwd)) if run.cwd else self.cwd
        if run.checkpoint_dir:
            ckpt = Path(cwd, run.checkpoint_dir)
            ckpt.mkdir(parents=True, exist_ok=True)
            env["GPUPLAN_CHECKPOINT_DIR"] = str(ckpt)
        try:
            a.proc = launcher.spawn(a.dir, a.log, run.argv, env, cwd)
        except OSError as exc:
            with j.tx():
                launcher.cancel_if_unclaimed(a.dir)
                self._end_attempt(a, "failed", None, f"cannot spawn: {exc}")
                self._after_failure(task, f"cannot spawn: {exc}")
            return
        a.pid = a.proc.pid
        with j.tx():
            self._mark_running(a)

    # finishing tasks ------------------------------------------------------------------------------
    def _poll_attempt(self, a: Attempt) -> tuple[bool, int | None]:
        """(ended, exit code): exit code None when the wrapper vanished without recording one."""
        ex = launcher.read_exit(a.dir)
        if ex is not None:
            if a.proc is not None:
                a.proc.poll()
            return True, int(ex["rc"])
        if a.proc is not None:
            alive = a.proc.poll() is None
        else:
            alive = a.pid is not None and launcher.wrapper_alive(a.pid, a.dir)
        if alive:
            return False, None
        ex = launcher.read_exit(a.dir)
        return True, None if ex is None else int(ex["rc"])

    def _reap(self) -> None:
        for task in list(self.tasks.values()):
            a = task.attempt
            if a is None or a.state not in ("running", "starting"):
                continue
            if a.state == "starting" and a.proc is None and a.pid is None:
                continue
            ended, rc = self._poll_attempt(a)
            if not ended:
                continue
            with self.journal.tx():
                if rc == 0:
                    self._end_attempt(a, "succeeded", 0, "exit code 0")
                    self._set_task(task, "done", f"attempt {a.n} exited 0")
                    self.journal.event("done", f"attempt {a.n} exited 0", task=task.id)
                else:
                    why = "wrapper vanished without an exit code" if rc is None else f"exit code {rc}"
                    self._end_attempt(a, "failed" if rc is not None else "lost", rc, why)
                    self._after_failure(task, why)
            if self._waiting():
                self._replan_needed = True

    def _after_failure(self, task: TaskState, why: str) -> None:
        task.failures += 1
        limit = self.spec.retries(task.id)
        if task.failures <= limit:
            self._set_task(task, "queued", f"retry after {why}")
            self.journal.event("retry", f"{why}; retry {task.failures} of {limit}", task=task.id)
        else:
            self._set_task(task, "failed", f"{why} after {task.failures} attempt(s)")
            self.journal.event("failed", f"{why}; no retries left ({limit} allowed)", task=task.id)

    def _waiting(self) -> list[TaskState]:
        return [t for t in self.tasks.values() if t.state == "waiting"]

    # stopping -------------------------------------------------------------------------------------
    def _stop_attempts(
        self, attempts: list[Attempt], reason: str, *, requeue: bool, fault: bool = False
    ) -> None:
        """SIGTERM each attempt's group, wait up to the grace period, SIGKILL the rest.

        A task that had already exited on its own is recorded as it ended; the others are `stopped`
        (not a failure: it does not use up a retry) and, with `requeue`, queued again. With `fault`
        their GPU leases end `failed` (the GPU failed under them), else `released`.
        """
        j = self.journal
        pending: list[Attempt] = []
        done_before: dict[int, int] = {}
        with j.tx():
            for a in attempts:
                ex = launcher.read_exit(a.dir)
                if ex is not None:
                    done_before[a.id] = int(ex["rc"])
                    continue
                a.state = "stopping"
                j.exec("UPDATE attempts SET state='stopping' WHERE id=?", (a.id,))
                self._set_task(self.tasks[a.task], "stopping", reason)
                j.event("stop", f"SIGTERM attempt {a.n}: {reason}", task=a.task)
                pending.append(a)
        for a in pending:
            if a.pid and (a.proc is not None or launcher.wrapper_alive(a.pid, a.dir)):
                launcher.terminate(a.pid)
        deadline = time.monotonic() + self.settings.grace_s
        alive = list(pending)
        while alive and time.monotonic() < deadline:
            alive = [a for a in alive if not self._poll_attempt(a)[0]]
            if alive:
                time.sleep(0.01)
        killed = {a.id for a in alive}
        for a in alive:
            if a.pid:
                launcher.kill(a.pid)
        kill_deadline = time.monotonic() + 5.0
        while alive and time.monotonic() < kill_deadline:
            alive = [a for a in alive if not self._poll_attempt(a)[0]]
            if alive:
                time.sleep(0.01)
        with j.tx():
            for a in attempts:
                task = self.tasks[a.task]
                if a.id in done_before:
                    rc = done_before[a.id]
                    if rc == 0:
                        self._end_attempt(a, "succeeded", 0, "exit code 0 (before the stop)")
                        self._set_task(task, "done", f"attempt {a.n} exited 0")
                        j.event("done", f"attempt {a.n} exited 0 before the stop", task=task.id)
                    else:
                        self._end_attempt(a, "failed", rc, f"exit code {rc} (before the stop)")
                        self._after_failure(task, f"exit code {rc}")
                    continue
                ex = launcher.read_exit(a.dir)
                rc = None if ex is None else int(ex["rc"])
                how = "SIGKILL after the grace period" if a.id in killed or rc is None else f"exit code {rc}"
                self._end_attempt(a, "stopped", rc, f"{reason} ({how})", lease="failed" if fault else None)
                task.attempt = None
                self._set_task(task, "queued" if requeue else "stopped", f"stopped: {reason}")

    # faults and re-planning -----------------------------------------------------------------------
    def _sample(self) -> None:
        """Read every GPU, append to metrics.jsonl, and act on faults and heat."""
        try:
            readings = self.backend.read()
        except Exception as exc:  # a backend that cannot read at all: log, keep running tasks
            with self.journal.tx():
                self.journal.event("monitor", f"device read failed: {type(exc).__name__}: {exc}")
            return
        on: dict[str, list[str]] = {}
        for t in self.tasks.values():
            if t.attempt is not None:
                for g in t.attempt.gpus:
                    on.setdefault(g, []).append(t.id)
        faults: list[tuple[str, str, str]] = []
        recovered: list[tuple[str, str]] = []
        limit = self.problem.temperature_limit_c
        for r in readings:
            gid = self.gpu_of_device.get(r.gpu)
            if gid is None:
                continue
            line = json.loads(r.to_json())
            line["gpu"], line["device"], line["tasks"] = gid, r.gpu, on.get(gid, [])
            self._metrics_fh.write(json.dumps(line) + "\n")
            faults.extend(self._judge(gid, r, limit, recovered))
        self._metrics_fh.flush()
        if recovered:
            with self.journal.tx():
                for gid, why in recovered:
                    self.excluded.pop(gid, None)
                    self.journal.exec("DELETE FROM gpus WHERE id=?", (gid,))
                    self.journal.event("recover", why, gpu=gid)
            if self._waiting():
                self._replan_needed = True
        if faults:
            self._handle_faults(faults)

    def _judge(
        self, gid: str, r: Reading, limit: float | None, recovered: list[tuple[str, str]]
    ) -> list[tuple[str, str, str]]:
        """(gpu, kind, reason) for each new fault in this reading; cooled GPUs go to `recovered`."""
        state = self.excluded.get(gid, ("", ""))[0]
        if state == "failed":
            return []
        if not r.healthy:
            return [(gid, "failed", r.error or "unhealthy")]
        if r.ecc_errors is not None:
            base = self._ecc_base.setdefault(gid, r.ecc_errors)
            if r.ecc_errors > base:
                return [(gid, "failed", f"uncorrected ECC errors rose from {base} to {r.ecc_errors}")]
        fatal = [x for x in r.xids if x in FATAL_XIDS]
        if fatal:
            return [(gid, "failed", f"XID {fatal[0]} (GPU error)")]
        for x in r.xids:
            with self.journal.tx():
                self.journal.event("xid", f"XID {x} reported (not a GPU fault; logged only)", gpu=gid)
        if limit is not None and r.temperature_c is not None:
            if state != "hot" and r.temperature_c > limit:
                return [(gid, "hot", f"{r.temperature_c:g} °C is over the limit of {limit:g} °C")]
            if state == "hot" and r.temperature_c <= limit - COOL_MARGIN_C:
                recovered.append((gid, f"cooled to {r.temperature_c:g} °C (limit {limit:g} °C)"))
        return []

    def _handle_faults(self, faults: list[tuple[str, str, str]]) -> None:
        """Exclude the GPUs, stop their tasks, re-plan the unfinished work, restart the moved tasks."""
        j = self.journal
        bad = {g for g, _, _ in faults}
        with j.tx():
            for gid, kind, why in faults:
                self.excluded[gid] = (kind, why)
                j.exec(
                    "INSERT INTO gpus(id, state, reason, t) VALUES(?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                    "state=excluded.state, reason=excluded.reason, t=excluded.t",
                    (gid, kind, why, time.time()),
                )
                j.event("fault", f"{'failed' if kind == 'failed' else 'overheated'}: {why}", gpu=gid)
        victims = [
            t.attempt for t in self.tasks.values() if t.attempt is not None and bad & set(t.attempt.gpus)
        ]
        for a in victims:
            self.tasks[a.task].moves += 1
        if victims:
            what = ", ".join(f"GPU {g} {'failed' if k == 'failed' else 'overheated'}" for g, k, _ in faults)
            self._stop_attempts(victims, what, requeue=True, fault=True)
        self._replan(f"GPU {', '.join(sorted(bad))} excluded")

    def _needs_placement(self) -> bool:
        return any(
            t.state == "queued" and (not t.gpus or any(g in self.excluded for g in t.gpus))
            for t in self.tasks.values()
        )

    def _replan(self, why: str) -> None:
        """Re-plan the unfinished work and apply it (moves, queueing, waiting)."""
        from gpuplan.executor.replan import replan

        self._replan_needed = False
        running = {t.id: list(t.attempt.gpus) for t in self.tasks.values() if t.attempt is not None}
        pending = [t.id for t in self.tasks.values() if t.state in ("queued", "waiting")]
        if not pending:
            with self.journal.tx():
                self.journal.event("replan", f"{why}: nothing to re-place")
            return
        started = time.monotonic()
        s = self.settings
        result = replan(
            self.problem,
            running=running,
            pending=pending,
            excluded=set(self.excluded) | self.remote,
            migration_cost=s.migration_cost,
            solver=s.replan_solver,
            time_limit_s=s.replan_time_limit_s,
            workers=s.workers,
            seed=s.seed,
        )
        plan = result.plan
        took = time.monotonic() - started
        j = self.journal
        moves: list[tuple[TaskState, list[str]]] = []
        with j.tx():
            j.event(
                "replan",
                f"{why}: {plan.status.value} by {plan.solver} in {took:.2f}s, "
                f"{len(plan.assignments)} placed, "
                f"{len(plan.unassigned)} left out"
                + (" (pending tasks made optional)" if result.relaxed else ""),
                data={"solve_s": round(took, 4), "status": plan.status.value, "relaxed": result.relaxed},
            )
            placed = {a.task: a.gpus for a in plan.assignments} if plan.status.has_solution else {}
            for tid in pending:
                task = self.tasks[tid]
                if tid in placed:
                    new = list(placed[tid])
                    if new != task.gpus:
                        old = ", ".join(task.gpus) or "waiting"
                        task.gpus = new
                        j.event("move", f"{old} -> {', '.join(new)} ({why})", task=tid)
                    self._set_task(task, "queued", f"placed by re-plan ({why})")
                else:
                    reason = next(
                        (u.reason for u in plan.unassigned if u.task == tid), plan.message or "no plan"
                    )
                    task.gpus = []
                    self._set_task(task, "waiting", reason)
                    j.event("wait", f"no GPU for now: {reason}", task=tid)
            for tid, gpus in running.items():
                new = placed.get(tid)
                if new is not None and set(new) != set(gpus):
                    moves.append((self.tasks[tid], list(new)))
        if moves:
            attempts = [t.attempt for t, _ in moves if t.attempt is not None]
            self._stop_attempts(attempts, "the re-plan moved it", requeue=True)
            with j.tx():
                for t, new in moves:
                    if t.state == "queued":
                        j.event("move", f"{', '.join(t.gpus)} -> {', '.join(new)} (re-plan)", task=t.id)
                        t.gpus = new
                        t.moves += 1
                        self._set_task(t, "queued", "moved by re-plan")

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
                if now - self._last_sample >= s.sample_interval_s:
                    self._last_sample = now
                    self._sample()
                self._reap()
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
        return self.result("stopped")

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
        for closer in (
            lambda: self.backend.close(),
            lambda: self.journal.close(),
            lambda: self._metrics_fh.close(),
            lambda: self._events_fh.close(),
            lambda: self._lock_fh.close(),
        ):
            with contextlib.suppress(Exception):
                closer()


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


def progress_to_stderr(line: str) -> None:
    """Progress printer for the CLI."""
    sys.stderr.write(f"gpuplan run: {line}\n")
    sys.stderr.flush()

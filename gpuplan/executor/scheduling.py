"""Scheduling: which queued tasks to launch next, and when.

Unscheduled plan (no planned times): queued tasks start by priority then plan order wherever their
GPUs have room (share and memory), as many at once as fit.

Scheduled plan (assignments with `start_h`), the launch rule: a queued task starts when

(a) every task in its `after` is done; a predecessor that failed for good (its retries used up) or
    was left out fails its successors, transitively, without an attempt (`blocked` event);
(b) its release has passed in wall time: the run's start + `release_h` x `hour_s`;
(c) on each of its resources (its GPUs; its node too when it takes CPU cores or host memory or has
    an anti-affinity group), every task planned earlier that the plan does not run alongside it has
    ended, and every task running there now is one the plan runs alongside it;
(d) its GPUs have room (share and memory), as for an unscheduled plan.

Candidates go by planned start, then plan order. Planned starts are an order, not a clock: a task
starts as soon as (a)-(d) hold, earlier than planned when its predecessors end early.

No overload: by (c), the tasks running together on a resource overlap pairwise in the plan, and
intervals that overlap pairwise share an instant (Helly's theorem in one dimension), at which the plan
ran all of them there; so together they take no more than the plan gave them at one instant.
No deadlock: a task waits only for tasks planned strictly before it (by planned start, then plan
order; a predecessor ends before its successor starts in the plan) or for running ones, which wait
for nothing; so the earliest unfinished task starts once the running tasks end and its release passes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from gpuplan.executor.state import TERMINAL_TASK_STATES, ExecutorBase, TaskState

#: Planned intervals that share less than this many hours do not overlap (touching tasks, rounding):
#: counting a sliver as no overlap only makes a task wait longer, never overloads a GPU.
OVERLAP_EPS_H = 1e-6

#: Most launches in one round: one journal transaction, then one request to each site involved, all
#: sent before any answer is awaited, so the nodes of a cluster start their wrappers in parallel. A
#: site takes at most its `cores` launches a round, and each site's answer waits until the tasks it
#: forked have started (`launcher.AWAIT_START_S`): the next round is recorded only when the last
#: one's tasks have their processes, so an attempt waits for a core rather than, recorded early, behind
#: every fork and start-up already queued for one. Where more sites have tasks than the cap allows, the
#: round is shared evenly among them, in turn. Measured with `benchmarks/executor_bench.py` and
#: `executor_ray_bench.py` (python-nosite tasks, 2 cores; benchmarks/README.md, *Paced launches*):
#: one machine, rounds of 2 (its cores) 10 to 11 ms at 127 to 144 /s, rounds of 4 18 to 19 ms at 135
#: to 145 /s, against 29 to 34 ms at 144 to 153 /s unpaced in rounds of 4; Ray (8 nodes of one CPU),
#: rounds of 8 31 to 43 ms at 86 to 106 /s over 16 runs, of 4 23 to 26 ms at 86 to 96 /s, of 16 61
#: to 64 ms at 102 to 104 /s, against 44 to 84 ms at 87 to 102 /s unpaced in rounds of 4 (same hours).
ROUND_MAX = 256

#: Task states that hold, or will hold, a place on a resource; those with a live attempt.
_ACTIVE = ("queued", "starting", "running", "stopping")
_LIVE = ("starting", "running", "stopping")


def planned_together(a: TaskState, b: TaskState) -> bool:
    """Whether the plan runs `a` and `b` at some common instant (a task without planned times runs
    alongside everything, as in an unscheduled plan)."""
    if a.start_h is None or a.end_h is None or b.start_h is None or b.end_h is None:
        return True
    return min(a.end_h, b.end_h) - max(a.start_h, b.start_h) > OVERLAP_EPS_H


def resources(task: TaskState) -> list[str]:
    """What a task holds while it runs, as rule (c) orders it: its GPUs, and its node when it uses the
    node's CPU cores or host memory or must keep apart from its anti-affinity group there."""
    out = [f"gpu:{g}" for g in task.gpus]
    if task.uses_node and task.node:
        out.append(f"node:{task.node}")
    return out


def _key(task: TaskState) -> tuple[float, int]:
    return (0.0 if task.start_h is None else task.start_h, task.ord)


def planned_on(tasks: Iterable[TaskState]) -> dict[str, list[TaskState]]:
    """Resource -> the unfinished tasks placed on it."""
    on: dict[str, list[TaskState]] = {}
    for t in tasks:
        if t.state in _ACTIVE:
            for r in resources(t):
                on.setdefault(r, []).append(t)
    return on


def held(task: TaskState, on: dict[str, list[TaskState]]) -> bool:
    """Rule (c): on one of `task`'s resources, a task planned before it and not alongside it has not
    ended, or a task running now is not planned alongside it. `on` is `planned_on` of the run's tasks."""
    key = _key(task)
    for r in resources(task):
        for u in on.get(r, ()):
            if u is task or u.state not in _ACTIVE or planned_together(task, u):
                continue
            if u.state in _LIVE or _key(u) < key:
                return True
    return False


class SchedulingMixin(ExecutorBase):
    """Start queued tasks whose predecessors are done and whose GPUs are usable, free and have room."""

    def _room(self) -> tuple[dict[str, float], dict[str, float]]:
        share: dict[str, float] = {}
        mem: dict[str, float] = {}
        for t in self.tasks.values():
            if t.attempt is not None:
                for g in t.attempt.gpus:
                    share[g] = share.get(g, 0.0) + t.share
                    mem[g] = mem.get(g, 0.0) + t.memory_gb
        return share, mem

    def _timed(self) -> bool:
        """Whether the run follows a schedule (some task has planned times)."""
        return any(t.start_h is not None for t in self.tasks.values())

    def _schedule(self) -> bool:
        """Start the queued tasks the launch rule allows (module docstring), in its order.

        Returns True when the time box ran out with tasks still to try (the loop then skips its sleep).
        """
        self._block_successors()
        queued = [t for t in self.tasks.values() if t.state == "queued" and t.placed]
        if not queued:
            return False
        share, mem = self._room()
        timed = self._timed()
        on = planned_on(self.tasks.values()) if timed else {}
        order = sorted(queued, key=_key if timed else lambda t: (-t.priority, t.ord))
        now = time.time()
        # time-boxed, so sampling (fault detection) keeps its pace while a large plan launches
        budget_end = time.monotonic() + max(
            self.settings.poll_interval_s, self.settings.sample_interval_s / 2
        )
        by_site: dict[str, list[TaskState]] = {}  # what may start now, per site, in launch order
        for t in order:
            if any(g in self.excluded or g not in self.device_of for g in t.gpus):
                continue
            if not self._ready(t, now) or (timed and held(t, on)):
                continue
            fits = all(
                share.get(g, 0.0) + t.share <= 1.0 + 1e-9
                and mem.get(g, 0.0) + t.memory_gb <= self._gpu_memory.get(g, float("inf")) + 1e-9
                for g in t.gpus
            )
            if not fits:
                continue
            by_site.setdefault(self._site_of(t), []).append(t)
            for g in t.gpus:
                share[g] = share.get(g, 0.0) + t.share
                mem[g] = mem.get(g, 0.0) + t.memory_gb
        return self._launch_rounds(list(by_site.items()), budget_end)

    def _launch_rounds(self, per_site: list[tuple[str, list[TaskState]]], budget_end: float) -> bool:
        """Start the tasks of `per_site` ((site, its tasks in launch order) pairs) in rounds: each site
        with tasks takes up to its `cores` launches a round, at most `ROUND_MAX` in all (shared evenly
        while more sites have tasks than that allows, each round starting with the site after the last
        one served); until none is left or the time box (`budget_end`, monotonic) ends. Returns True
        when tasks were left for the next loop turn (their room is counted again then)."""
        queues = [(max(1, self.sites[site].cores), deque(tasks)) for site, tasks in per_site if tasks]
        turn = 0  # the queue that goes first in the next round
        while queues:
            fair = -(-ROUND_MAX // len(queues))  # ceil(ROUND_MAX / sites)
            batch: list[TaskState] = []
            served = 0
            while len(batch) < ROUND_MAX and served < len(queues):
                cores, q = queues[(turn + served) % len(queues)]
                take = min(cores, fair, len(q), ROUND_MAX - len(batch))
                batch.extend(q.popleft() for _ in range(take))
                served += 1
            self._start_many(batch)
            nxt = queues[(turn + served) % len(queues)][1]
            queues = [(c, q) for c, q in queues if q]
            turn = next((i for i, (_, q) in enumerate(queues) if q is nxt), 0)
            if queues and time.monotonic() > budget_end:
                return True
        return False

    def _ready(self, task: TaskState, now: float) -> bool:
        """Rules (a) and (b): every predecessor done, and the release passed (wall time)."""
        for p in task.after:
            pred = self.tasks.get(p)
            if pred is not None and pred.state != "done":
                return False
        return task.release_h <= 0 or now >= self.epoch + task.release_h * self.settings.hour_s

    def _block_successors(self) -> None:
        """Fail, without an attempt, the unstarted tasks whose predecessor failed for good or was left
        out (transitively): they can never start."""
        if not any(t.after for t in self.tasks.values()):
            return
        while True:
            found: list[tuple[TaskState, TaskState]] = []
            for t in self.tasks.values():
                if t.state not in ("queued", "waiting"):
                    continue
                pred = next(
                    (
                        self.tasks[p]
                        for p in t.after
                        if p in self.tasks
                        and self.tasks[p].state in TERMINAL_TASK_STATES
                        and self.tasks[p].state != "done"
                    ),
                    None,
                )
                if pred is not None:
                    found.append((t, pred))
            if not found:
                return
            with self.journal.tx():
                for t, pred in found:
                    why = f"not started: predecessor {pred.id!r} {pred.state} ({pred.reason})"
                    self._set_task(t, "failed", why)
                    self.journal.event("blocked", why, task=t.id)

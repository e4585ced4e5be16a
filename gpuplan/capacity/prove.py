"""Prove a fleet: route, time-table and repair every required task on it, check independently.

1. **Route**: the work of each sizing class is split over the fleet's offers by
   :func:`gpuplan.capacity.sizing.balanced_flow` (an LP that leaves every offer the same share of
   slack), and its tasks are dealt to offers to follow that split (largest first, to the offer
   with the most of the class's share left).
2. **Time-table** (:mod:`gpuplan.capacity.schedule`): per offer, the routed tasks are placed one by
   one on the node and GPUs (aligned blocks for gangs) that end them first, filling gaps left
   earlier; twice, in two orders - EDF by deadline level with larger gangs and longer work first,
   and larger gangs / longer work first - and per offer the order leaving less work out is kept.
3. **Repair**: tasks left out go, required first, into a gap on any eligible node; else a node is
   re-time-tabled from scratch with the task; else one smaller task is moved to another node to
   make room. Optional tasks are only inserted into gaps.
4. When required tasks remain and every task is single-GPU, gpuplan itself (horizon mode, where
   GPU-hours add up per GPU) assigns tasks to nodes; that assignment is time-tabled and repaired
   the same way and kept when it leaves fewer required tasks out. With gangs the engine's plan
   does not line up start times, so it is not asked.
5. A fleet is called proven only when `check_schedule` (independent of all of the above) passes.
   Steps 1-4 are heuristics: a fleet they cannot fill may still admit a schedule. Everything is
   deterministic (GLOP, fixed orders with index tie-breaks); only the time limit can cut repair short.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.capacity.prepare import Prepared
from gpuplan.capacity.schedule import (
    FleetNodes,
    Schedule,
    check_schedule,
    level_key,
    repair,
    size_key,
    timetable,
)
from gpuplan.capacity.sizing import Sizing, balanced_flow, classes
from gpuplan.models import GPUType, Node, Problem, Task

log = logging.getLogger("gpuplan")


#: The engine is asked only when every task is single-GPU (see the module docstring).
ENGINE_MAX_GANG = 1


class ProofError(AssertionError):
    """A schedule claimed valid failed the independent check (an internal bug)."""


@dataclass(frozen=True)
class Proof:
    """The outcome of proving one fleet."""

    ok: bool
    schedule: Schedule
    failed: list[int]  # required tasks left out
    optional_left: list[int]
    method: str
    engine_status: str
    wall_s: float
    utilization: float = 0.0  # the balanced flow's u: share of the fleet the aggregate work needs


def node_name(prep: Prepared, fleet: FleetNodes, j: int) -> str:
    return f"{prep.catalog.offers[fleet.offer[j]].name}#{fleet.ordinal[j]}"


def to_problem(prep: Prepared, fleet: FleetNodes, tasks: list[int]) -> Problem:
    """The fleet and `tasks` as a gpuplan Problem in horizon mode (see the module docstring)."""
    offers = prep.catalog.offers
    types = [
        GPUType(
            name=o.name,
            memory_gb=o.gpu.memory_gb,
            speed=o.gpu.speed,
            cost_per_hour=o.price_per_node_hour / o.gpus_per_node,
            power_w=o.gpu.power_w,
        )
        for o in offers
    ]
    nodes = [
        Node(
            id=node_name(prep, fleet, j),
            gpu_counts={offers[fleet.offer[j]].name: int(prep.per_node[fleet.offer[j]])},
        )
        for j in range(fleet.size)
    ]
    present = set(fleet.offer.tolist())
    out = []
    for t in tasks:
        spec = prep.workload.tasks[t]
        allowed = [offers[o].name for o in np.flatnonzero(prep.eligible[t]) if o in present]
        out.append(
            Task(
                id=spec.id,
                gpus=spec.gpus,
                gpu_memory_gb=spec.gpu_memory_gb,
                work_h=spec.work_h,
                priority=0 if spec.optional else 1,
                optional=True,
                allowed_types=allowed,
            )
        )
    return Problem(gpu_types=types, nodes=nodes, tasks=out, horizon_h=prep.horizon)


def _engine(
    prep: Prepared, fleet: FleetNodes, time_limit_s: float, workers: int | None, seed: int
) -> tuple[dict[int, int], str]:
    """gpuplan's assignment of tasks to nodes on the fleet, and its status."""
    from gpuplan.api import solve

    present = set(fleet.offer.tolist())
    tasks = [
        t
        for t in range(len(prep.workload.tasks))
        if any(o in present for o in np.flatnonzero(prep.eligible[t]))
    ]
    if not tasks:
        return {}, "empty"
    problem = to_problem(prep, fleet, tasks)
    plan = solve(problem, solver="auto", time_limit_s=time_limit_s, workers=workers, seed=seed)
    index = {spec.id: k for k, spec in enumerate(prep.workload.tasks)}
    node_index = {node_name(prep, fleet, j): j for j in range(fleet.size)}
    return {
        index[a.task]: node_index[a.node or ""] for a in plan.assignments
    }, f"{plan.status.value} ({plan.solver})"


def route(prep: Prepared, cls: Any, flow: np.ndarray, nodes: tuple[int, ...]) -> dict[int, int]:
    """Required task -> offer, following `flow` [C, O]: per class, largest task first, to the
    eligible offer of the fleet with the most of the class's share left (lowest index on ties)."""
    present = np.array(nodes) > 0
    out: dict[int, int] = {}
    by_class: dict[int, list[int]] = {}
    for t in np.flatnonzero(cls.task_class >= 0):
        by_class.setdefault(int(cls.task_class[t]), []).append(int(t))
    for c, members in sorted(by_class.items()):
        left = flow[c].astype(np.float64).copy()
        offs = np.flatnonzero(prep.eligible[members[0]] & present)
        if offs.size == 0:
            continue
        for t in sorted(members, key=lambda t: (-prep.gang[t] * prep.work[t], t)):
            o = int(offs[np.argmax(left[offs])])
            out[t] = o
            left[o] -= prep.gang[t] * prep.work[t]
    return out


def _by_offer(fleet: FleetNodes) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for j, o in enumerate(fleet.offer.tolist()):
        out.setdefault(int(o), []).append(j)
    return out


def _time_table(
    prep: Prepared, fleet: FleetNodes, target: dict[int, list[int]], keys: list
) -> tuple[Schedule, list[int]]:
    """Time-table each task on its target nodes in every order of `keys`; per offer, keep the
    order that leaves the least work out. Returns the schedule and the tasks left out."""
    runs = []
    for key in keys:
        sched = Schedule(prep, fleet)
        left = timetable(sched, list(target), lambda t: target[t], key)
        runs.append((sched, left))
    final = Schedule(prep, fleet)
    left_all: list[int] = []
    for _o, members in sorted(_by_offer(fleet).items()):
        mine = set(members)
        lost = [sum(prep.gang[t] * prep.work[t] for t in run[1] if target[t][0] in mine) for run in runs]
        sched, left = runs[int(np.argmin(lost))]
        for j in members:
            for t in sorted(sched.on_node[j]):
                final.place(t, j, (sched.start[t], 0.0, sched.where[t][1]))
        left_all += [t for t in left if target[t][0] in mine]
    return final, sorted(left_all)


def prove(
    prep: Prepared,
    nodes: tuple[int, ...],
    *,
    sizing: Sizing | None = None,
    cls: Any = None,
    time_limit_s: float = 6.0,
    workers: int | None = None,
    seed: int = 0,
) -> Proof:
    """Route, time-table and repair on the fleet `nodes` (per offer); check before claiming success.

    `sizing` is accepted for callers that have one; the routing comes from the balanced flow."""
    del sizing
    started = time.monotonic()
    stop = started + time_limit_s
    fleet = FleetNodes.of(nodes)
    cls = cls if cls is not None else classes(prep)
    flow, util = balanced_flow(prep, cls, nodes)
    offer_nodes = _by_offer(fleet)
    keys = [level_key(prep, cls.levels), size_key(prep)]
    to = route(prep, cls, flow, nodes)
    required = [t for t in range(len(prep.workload.tasks)) if not prep.optional[t] and prep.eligible[t].any()]
    target = {t: offer_nodes[to[t]] for t in required if t in to}
    sched, left = _time_table(prep, fleet, target, keys)
    left = sorted(set(left) | (set(required) - set(target)))
    n_first = len(left)
    left = repair(sched, left, keys, stop)
    method = "time-table" if not n_first else "time-table+repair"
    engine_status = "not run"
    log.info("capacity: time-table leaves %d required, %d after repair", n_first, len(left))
    if left and int(prep.gang.max(initial=1)) <= ENGINE_MAX_GANG and time.monotonic() < stop:
        assign, engine_status = _engine(prep, fleet, max(0.5, stop - time.monotonic()), workers, seed)
        e_target = {t: [assign[t]] for t in required if t in assign}
        alt, alt_left = _time_table(prep, fleet, e_target, keys)
        alt_left = repair(alt, sorted(set(alt_left) | (set(required) - set(e_target))), keys, stop)
        log.info("capacity: engine %s, %d required left after repair", engine_status, len(alt_left))
        if len(alt_left) < len(left):
            sched, left, method = alt, alt_left, "engine+time-table+repair"
    elif left and int(prep.gang.max(initial=1)) > ENGINE_MAX_GANG:
        engine_status = "skipped: gangs (the engine does not line up gang start times)"
    failed = sorted(left)
    optional = [t for t in range(len(prep.workload.tasks)) if prep.optional[t] and prep.eligible[t].any()]
    repair(sched, optional)
    optional_left = sorted(
        t for t in range(len(prep.workload.tasks)) if prep.optional[t] and t not in sched.where
    )
    ok = not failed
    if ok:
        errors = check_schedule(prep.workload, prep.catalog, _counts(prep, nodes), rows(prep, sched))
        if errors:
            raise ProofError(f"capacity schedule fails the independent check: {errors[:3]}")
    return Proof(ok, sched, failed, optional_left, method, engine_status, time.monotonic() - started, util)


def _counts(prep: Prepared, nodes: tuple[int, ...]) -> dict[str, int]:
    return {o.name: int(n) for o, n in zip(prep.catalog.offers, nodes, strict=True)}


def rows(prep: Prepared, sched: Schedule) -> list[tuple[str, str, int, list[int], float, float]]:
    """(task, offer, node ordinal, GPUs, start, end) of every placed task, in task order."""
    out = []
    for t in sorted(sched.where):
        j, gpus = sched.where[t]
        o = int(sched.fleet.offer[j])
        out.append(
            (
                prep.workload.tasks[t].id,
                prep.catalog.offers[o].name,
                int(sched.fleet.ordinal[j]),
                list(gpus),
                sched.start[t],
                sched.end[t],
            )
        )
    return out


__all__ = ["Proof", "ProofError", "node_name", "prove", "route", "rows", "to_problem"]

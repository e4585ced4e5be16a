"""Prove a fleet: assign and schedule every required task on it, repair, check independently.

1. A list scheduler (:func:`gpuplan.capacity.schedule.list_schedule`) takes tasks earliest
   deadline first (largest first on ties), each to the node and GPUs that finish it earliest,
   preferring the offers the sizing MILP routed its class to; gangs start on all their GPUs at once.
   Tasks left out or late are re-inserted where every task of the receiving node stays on time.
2. When required tasks remain and every task is single-GPU, gpuplan itself solves the assignment:
   the fleet becomes a `Problem` in horizon mode (one GPU type per offer, every task allowed only
   on offers where it fits and meets its deadline, GPU time budget H per GPU; required tasks as a
   higher priority tier of optional ones so a plan comes back even when some do not fit), each
   node's tasks are scheduled EDF, and late or left-out tasks are re-inserted; the better of 1 and
   2 is kept. With gangs the engine is not asked: its fleet program gives a whole GPU to one task
   for the whole horizon (no sequence), which cannot hold a month of jobs.
3. A fleet is called proven only when `check_schedule` (independent of all of the above) passes.
   Steps 1-2 are heuristics: a fleet they cannot fill may still admit a schedule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.capacity.prepare import Prepared
from gpuplan.capacity.schedule import FleetNodes, Schedule, check_schedule, list_schedule, repair
from gpuplan.capacity.sizing import Sizing
from gpuplan.models import GPUType, Node, Problem, Task

log = logging.getLogger("gpuplan")


#: The engine's fleet program gives a whole GPU to one task at a time (no sequence of whole-GPU
#: tasks on a GPU within the horizon), so it is asked only when every task is single-GPU: then
#: `solve` takes the GAP core, whose horizon mode adds GPU-hours up per GPU.
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
) -> tuple[Schedule, list[int], str]:
    """gpuplan's assignment on the fleet, as a Schedule; returns it, the tasks left out, the status."""
    from gpuplan.optimizer.solve import solve

    present = set(fleet.offer.tolist())
    tasks = [
        t
        for t in range(len(prep.workload.tasks))
        if any(o in present for o in np.flatnonzero(prep.eligible[t]))
    ]
    homeless = sorted(set(range(len(prep.workload.tasks))) - set(tasks))
    sched = Schedule(prep, fleet)
    if not tasks:
        return sched, homeless, "empty"
    problem = to_problem(prep, fleet, tasks)
    plan = solve(problem, solver="auto", time_limit_s=time_limit_s, workers=workers, seed=seed)
    index = {spec.id: k for k, spec in enumerate(prep.workload.tasks)}
    node_index = {node_name(prep, fleet, j): j for j in range(fleet.size)}
    items: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(fleet.size)]
    placed: set[int] = set()
    for a in plan.assignments:
        j = node_index[a.node or ""]
        gpus = tuple(sorted(int(g.rsplit("/", 1)[1]) for g in a.gpus))
        items[j].append((index[a.task], gpus))
        placed.add(index[a.task])
    for j in range(fleet.size):
        sched.set_node(j, items[j])
    left = [t for t in tasks if t not in placed] + homeless
    return sched, left, f"{plan.status.value} ({plan.solver})"


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
    """Assign, schedule and repair on the fleet `nodes` (per offer); check before claiming success."""
    started = time.monotonic()
    fleet = FleetNodes.of(nodes)
    every = [t for t in range(len(prep.workload.tasks)) if prep.eligible[t].any()]
    flow = None if sizing is None else sizing.flow
    task_class = None if cls is None else cls.task_class
    sched, left = list_schedule(prep, fleet, every, flow, task_class)
    left = repair(sched, left)
    method = "list schedule" if not left else "list schedule+repair"
    failed = [t for t in left if not prep.optional[t]]
    engine_status = "not run"
    log.info("capacity: list schedule leaves %d required", len(failed))
    if failed and int(prep.gang.max(initial=1)) <= ENGINE_MAX_GANG:
        alt, alt_left, engine_status = _engine(prep, fleet, time_limit_s, workers, seed)
        late = alt.late()
        alt.remove(late)
        alt_left = repair(alt, alt_left + late)
        alt_failed = [t for t in alt_left if not prep.optional[t]]
        log.info("capacity: engine %s, %d required left after repair", engine_status, len(alt_failed))
        if len(alt_failed) < len(failed):
            sched, left, failed, method = alt, alt_left, alt_failed, "engine+repair"
    elif failed:
        engine_status = "skipped: gangs (the fleet program gives a whole GPU to one task, no sequence)"
    optional_left = sorted(
        t for t in range(len(prep.workload.tasks)) if prep.optional[t] and t not in sched.where
    )
    ok = not failed
    if ok:
        errors = check_schedule(prep.workload, prep.catalog, _counts(prep, nodes), rows(prep, sched))
        if errors:
            raise ProofError(f"capacity schedule fails the independent check: {errors[:3]}")
    return Proof(ok, sched, sorted(failed), optional_left, method, engine_status, time.monotonic() - started)


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


__all__ = ["Proof", "ProofError", "node_name", "prove", "rows", "to_problem"]

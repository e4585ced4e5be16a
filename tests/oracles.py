"""Brute-force references for the tests: optima of tiny GAP programs, matrix instances, Problems with
priorities, fleet programs (the library's own oracle, re-exported; every plan and the lexicographic
optimum), scheduled programs, knapsacks and capacity sizing.

Each enumerates every candidate and judges it plainly, sharing no modelling with the solvers beyond
the program's own feasibility and objective methods; meant for a handful of tasks and GPUs only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from gpuplan import MatrixProblem, Problem
from gpuplan.backends.fleet_brute import brute_force as fleet_brute_force
from gpuplan.capacity import Catalog
from gpuplan.program.fleet import NONE, FleetProgram, compile_fleet
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.schedule import ScheduleProgram
from gpuplan.program.schedule import objective as schedule_objective
from gpuplan.program.schedule import violations as schedule_violations

# --- matrix instances and the Problem form -------------------------------------------------------------


def matrix_brute_force(m: dict) -> float | None:
    """Minimum total cost over all assignments of every task to one GPU; None when none is feasible."""
    parsed = MatrixProblem.model_validate(m).matrix
    cost, loads, caps = parsed.cost, parsed.loads(), parsed.capacities()
    n_t, n_g = parsed.n_tasks, parsed.n_gpus
    options = [[g for g in range(n_g) if cost[t][g] is not None] for t in range(n_t)]
    best = None
    for combo in itertools.product(*options):
        used = [[0.0] * n_g for _ in caps]
        ok = True
        for t, g in enumerate(combo):
            for r in range(len(caps)):
                used[r][g] += loads[r][t][g]
                if used[r][g] > caps[r][g]:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            total = sum(cost[t][g] for t, g in enumerate(combo))
            best = total if best is None else min(best, total)
    return best


def priority_brute_force(data: dict) -> tuple[tuple[int, ...], float, list[int]] | None:
    """Best (placed optional tasks per priority level, high to low; cost; the levels) by enumeration.

    Returns None when the required tasks cannot all be placed.
    """
    p = Problem.model_validate(data)
    types = {t.name: t for t in p.gpu_types}
    gpus = [g for _, g in p.all_gpus()]
    levels = sorted({t.priority for t in p.tasks if t.optional}, reverse=True)
    choices = []
    for task in p.tasks:
        ok = [None] if task.optional else []
        ok += [k for k, g in enumerate(gpus) if g.healthy and task.gpu_memory_gb <= types[g.type].memory_gb]
        choices.append(ok)
    best: tuple[tuple[int, ...], float] | None = None
    for combo in itertools.product(*choices):
        share = [0.0] * len(gpus)
        memory = [0.0] * len(gpus)
        hours = [0.0] * len(gpus)
        cost = 0.0
        for task, k in zip(p.tasks, combo, strict=True):
            if k is None:
                continue
            gt = types[gpus[k].type]
            duration = task.work_h / gt.speed
            share[k] += task.gpu_share
            memory[k] += task.gpu_memory_gb
            hours[k] += duration * task.gpu_share
            cost += duration * task.gpu_share * gt.cost_per_hour
        if p.horizon_h is None:
            fits = all(share[k] <= 1 and memory[k] <= types[g.type].memory_gb for k, g in enumerate(gpus))
        else:
            fits = all(h <= p.horizon_h for h in hours)
        if not fits:
            continue
        counts = tuple(
            sum(
                1
                for t, k in zip(p.tasks, combo, strict=True)
                if t.optional and t.priority == lv and k is not None
            )
            for lv in levels
        )
        key = (tuple(-c for c in counts), cost)
        if best is None or key < (tuple(-c for c in best[0]), best[1]):
            best = (counts, cost)
    return None if best is None else (best[0], best[1], levels)


# --- compiled GAP programs -----------------------------------------------------------------------------


def feasible_plans(p: Program) -> list[tuple[np.ndarray, int]]:
    """Every feasible assignment (optional tasks may be dropped) and its integer objective."""
    options = [np.flatnonzero(p.eligible[t]).tolist() for t in range(p.n_tasks)]
    options = [[*o, DROPPED] if p.optional[t] else o for t, o in enumerate(options)]
    out = []
    for combo in itertools.product(*options):
        a = np.array(combo, dtype=np.int64)
        if p.is_feasible(a):
            out.append((a, p.objective_int(a)))
    return out


def best_assignment(p: Program) -> np.ndarray | None:
    """An optimal assignment (the first of least integer objective), or None when none is feasible."""
    plans = feasible_plans(p)
    return min(plans, key=lambda plan: plan[1])[0] if plans else None


def knapsack_by_enumeration(w: np.ndarray, a: np.ndarray, allowed: np.ndarray, cap: int) -> float:
    """min Σ w x over every 0-1 x within `allowed` whose load fits `cap` (0: the empty set)."""
    best = 0.0
    for bits in itertools.product([0, 1], repeat=w.size):
        x = np.array(bits, dtype=bool)
        if not (x & ~allowed).any() and a[x].sum() <= cap:
            best = min(best, float(w[x].sum()))
    return best


def fleet_spots(p: FleetProgram, assign: np.ndarray, t: int) -> list[tuple[int, ...]]:
    """Every set of `gang` distinct GPUs that unplaced task t could take in `assign` as it stands
    without breaking a rule (required tasks still left out aside)."""
    spots = []
    for gpus in itertools.combinations(range(p.n_gpus), int(p.gang[t])):
        trial = assign.copy()
        trial[t] = NONE
        trial[t, : len(gpus)] = gpus
        if all(v.startswith("required task") and v.endswith("dropped") for v in p.violations(trial)):
            spots.append(gpus)
    return spots


def fleet_assignments(p: FleetProgram) -> list[np.ndarray]:
    """Every feasible assignment of a tiny fleet program: each task dropped (when optional) or on
    every set of `gang` distinct eligible GPUs, judged by `FleetProgram.violations` alone."""
    options: list[list[tuple[int, ...]]] = []
    for t in range(p.n_tasks):
        opts: list[tuple[int, ...]] = [()] if p.optional[t] else []
        opts.extend(itertools.combinations(np.flatnonzero(p.eligible(t)).tolist(), int(p.gang[t])))
        options.append(opts)
    out = []
    for combo in itertools.product(*options):
        assign = np.full((p.n_tasks, p.max_gang), NONE, dtype=np.int64)
        for t, gpus in enumerate(combo):
            assign[t, : len(gpus)] = gpus
        if not p.violations(assign):
            out.append(assign)
    return out


def lexicographic_key(problem: Problem, assign: np.ndarray) -> tuple[float, ...]:
    """The values a lexicographic objective compares, in its order, of an assignment of a problem
    whose optional tasks share one priority: without 'placed' among the criteria the optional tasks
    left out come first (priorities above every criterion); then each criterion, measured alone
    (each through the program of that single criterion, penalties set to 0)."""
    kinds = [t.kind for t in problem.objective.terms]
    dropped = assign[:, 0] < 0
    key: list[float] = []
    if "placed" not in kinds:
        key.append(float(np.sum(dropped & np.array([t.optional for t in problem.tasks]))))
    for kind in kinds:
        single = problem.objective.model_copy(update={"kind": kind, "terms": []})
        q = compile_fleet(problem.model_copy(update={"objective": single})).program
        if kind == "placed":
            key.append(float(q.weight[dropped].sum()))
        else:
            key.append(q.replace(penalty=np.zeros(q.n_tasks)).objective(assign))
    return tuple(key)


def lexicographic_optimum(problem: Problem) -> tuple[float, ...] | None:
    """The least `lexicographic_key` over every feasible plan of a tiny problem (None: none)."""
    p = compile_fleet(problem, flat_tiers=True).program  # the plans only: no penalty counts here
    keys = [lexicographic_key(problem, a) for a in fleet_assignments(p)]
    return min(keys) if keys else None


# --- capacity sizing -----------------------------------------------------------------------------------


def vector_cost(cat: Catalog, vec: Sequence[int], horizon: float) -> float:
    """The bill of `vec[i]` nodes of each offer over the horizon, committed offers at their discount."""
    total = 0.0
    for o, n in zip(cat.offers, vec, strict=True):
        rate = o.price_per_node_hour * (
            1 - o.commit_discount if o.commit_discount and n >= o.commit_min_nodes else 1
        )
        total += n * rate * horizon
    return total


def cheapest_vector(
    cat: Catalog, horizon: float, limits: Sequence[int], enough: Callable[[tuple[int, ...]], bool]
) -> float | None:
    """The least `vector_cost` over node counts up to `limits` (per offer) that are `enough`."""
    best = None
    for vec in itertools.product(*[range(n + 1) for n in limits]):
        if enough(vec):
            c = vector_cost(cat, vec, horizon)
            best = c if best is None else min(best, c)
    return best


def packs(durations: Sequence[Sequence[float]], caps: Sequence[tuple[int, float]]) -> bool:
    """Exact: can single-GPU tasks (durations per GPU class) be packed into GPUs (class, capacity)?"""
    loads = [0.0] * len(caps)

    def go(i: int) -> bool:
        if i == len(durations):
            return True
        seen = set()
        for g, (typ, h) in enumerate(caps):
            key = (typ, loads[g])
            if key in seen:
                continue
            seen.add(key)
            d = durations[i][typ]
            if loads[g] + d <= h + 1e-9:
                loads[g] += d
                if go(i + 1):
                    return True
                loads[g] -= d
        return False

    return go(0)


__all__ = [
    "best_assignment",
    "cheapest_vector",
    "feasible_plans",
    "fleet_brute_force",
    "fleet_spots",
    "knapsack_by_enumeration",
    "matrix_brute_force",
    "packs",
    "priority_brute_force",
    "schedule_brute_force",
    "schedule_horizon",
    "vector_cost",
]


# --- scheduled programs ----------------------------------------------------------------------------------

#: Refuse scheduled programs with more (placement, start) leaves than this.
MAX_SCHEDULES = 200_000


def schedule_horizon(sp: ScheduleProgram) -> int:
    """H = max release + the sum of each task's longest eligible duration: with integer durations
    and releases some optimal schedule is semi-active (each start a release or another task's end),
    so its starts are integers in [0, H]."""
    d = np.where(sp.fleet.eligible_c, np.nan_to_num(sp.duration_c, nan=0.0), 0.0)
    return round(float(sp.release.max(initial=0.0) + d.max(axis=1, initial=0.0).sum()))


def schedule_brute_force(sp: ScheduleProgram) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(optimal objective, assign, start) of a tiny scheduled program with integer durations and
    releases; None when no schedule is feasible.

    Every task is dropped (when optional) or given every set of `gang` eligible GPUs and every
    integer start in [release, H] (`schedule_horizon`). Feasibility is judged by
    `schedule.violations` only and the value by `schedule.objective` only; a partial plan (later
    tasks still left out) is abandoned when it breaks a rule other than a later task being left
    out (a required one, or a predecessor of a placed task), since every other rule only gets
    harder to meet as tasks are added.
    """
    f = sp.fleet
    h = schedule_horizon(sp)
    options: list[list[tuple[tuple[int, ...], float]]] = []
    for t in range(sp.n_tasks):
        opts: list[tuple[tuple[int, ...], float]] = [((), np.nan)] if f.optional[t] else []
        starts = range(int(np.ceil(sp.release[t])), h + 1)
        for gpus in itertools.combinations(np.flatnonzero(f.eligible(t)).tolist(), int(f.gang[t])):
            opts.extend((gpus, float(s)) for s in starts)
        options.append(opts)
    size = math.prod(len(o) for o in options)
    if size > MAX_SCHEDULES:
        raise ValueError(f"schedule brute force: {size:,} leaves exceed {MAX_SCHEDULES:,}")
    assign = f.empty_assign()
    start = np.full(sp.n_tasks, np.nan)
    best: list[tuple[float, np.ndarray, np.ndarray]] = []

    def ok_so_far(upto: int) -> bool:
        pending = {f"required task {t} dropped" for t in range(upto, sp.n_tasks)}
        for v in schedule_violations(sp, assign, start):
            if v in pending:
                continue
            words = v.split()
            later = "left" in words and int(words[words.index("predecessor") + 1]) >= upto
            if "predecessor" in words and later:
                continue
            return False
        return True

    def visit(t: int) -> None:
        if t == sp.n_tasks:
            value = schedule_objective(sp, assign, start)
            if not best or value < best[0][0]:
                best[:] = [(value, assign.copy(), start.copy())]
            return
        for gpus, s in options[t]:
            assign[t] = NONE
            assign[t, : len(gpus)] = gpus
            start[t] = s
            if ok_so_far(t + 1):
                visit(t + 1)
        assign[t] = NONE
        start[t] = np.nan

    visit(0)
    return best[0] if best else None

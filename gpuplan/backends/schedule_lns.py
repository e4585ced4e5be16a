r"""Large-neighbourhood search over a schedule: free the tasks of a few nodes within a time window,
solve that neighbourhood exactly with CP-SAT while every other task stays, keep it when no worse.

For programs past the exact interval model (`strategy.schedule.SCHEDULE_EXACT_PAIRS`, up to
`LNS_MAX_PAIRS`), where only the event and list schedules ran: it spends the time they leave.

Neighbourhood (:func:`gpuplan.program.neighbourhood.sub_schedule`). A seed task is drawn among
the placed tasks that wait, :math:`S_t > h_t` (the head: the earliest start releases and
precedences allow at the fastest GPUs), with probability proportional to
:math:`w_t (S_t - h_t)`, or among all placed tasks when none waits. Its node and up to
`MAX_NODES` - 1 other nodes it could use (drawn at random) form :math:`N`. The free tasks
:math:`F` are the seed and the `size` - 1 tasks of :math:`N` that start first among those still
running at the seed's head (:math:`E_t > h_{\mathrm{seed}}`: a task that holds the seed's GPUs may
go later); the window is :math:`[a, b]` with :math:`a = \min_F S_t` and :math:`b` a little past
:math:`\max_F E_t` (`SLACK`), so the current schedule is one of the neighbourhood's. Pinned: the
other tasks of :math:`N` that run during :math:`(a, b)` (at most `MAX_PINNED`). The neighbourhood
is solved by
:func:`gpuplan.backends.schedule_cpsat.solve_schedule_window`, hinted with the current schedule,
for at most `ROUND_S` seconds.

A neighbourhood's schedule is checked against the neighbourhood's own program (which holds every
rule the whole program imposes on its tasks, see `sub_schedule`) and kept when the whole program's
objective is no higher (sideways moves welcome). `size` adapts to the time a neighbourhood takes:
x1.25 after one solved to optimality in under half of `ROUND_S`, x0.8 after one that was not,
within [`MIN_TASKS`, `MAX_TASKS`]. The search stops at the deadline, or when the objective meets
`bound`. Idea as in Shaw (1998) and CP-SAT's scheduling neighbourhoods (time windows, machine
subsets); the time-window and resource-subset split follows Pacino and Van Hentenryck (2011).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gpuplan.backends.schedule_cpsat import Pin, _meets, solve_schedule_window
from gpuplan.interrupt import past
from gpuplan.program.fleet import NONE
from gpuplan.program.neighbourhood import from_sub, sub_schedule, to_sub
from gpuplan.program.schedule import ScheduleProgram, ends, fastest, heads, objective, violations

#: Free tasks in the first neighbourhood, and the range `size` adapts within.
START_TASKS = 12.0
MIN_TASKS = 4.0
MAX_TASKS = 200.0
#: Most nodes in a neighbourhood (the seed's and others it could use).
MAX_NODES = 2
#: The window reaches this share of its length past the free tasks' last end (and 1e-3 h more):
#: where time is not exact the model pads each free task by one unit, and the current schedule
#: must still fit.
SLACK = 0.05
#: Most pinned tasks in a neighbourhood (a larger one is passed over, and `size` shrinks).
MAX_PINNED = 400
#: Seconds one neighbourhood may take at most (on batch-300 of `benchmarks/schedule_mid.py`, 60 s
#: from the event schedule, seeds 1 and 2: 0.05 s gave 2,120 and 2,132, 0.1 s 2,113 and 2,121, 0.3 s
#: 2,122 and 2,130; about two in three neighbourhoods are solved to optimality within 0.1 s).
ROUND_S = 0.1


@dataclass
class ScheduleLnsResult:
    """The best schedule found (never worse than the start) and what the search did."""

    assign: np.ndarray
    start: np.ndarray
    objective: float
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


def schedule_lns(
    sp: ScheduleProgram,
    assign: np.ndarray,
    start: np.ndarray,
    *,
    deadline: float,
    bound: float | None = None,
    workers: int = 1,
    seed: int = 0,
) -> ScheduleLnsResult:
    """Improve the feasible schedule (`assign`, `start`) until the monotonic `deadline` (module
    docstring)."""
    rng = np.random.default_rng(seed)
    assign = np.array(assign, dtype=np.int64)
    start = np.array(start, dtype=np.float64)
    best = first = objective(sp, assign, start)
    head = heads(sp, fastest(sp))
    f = sp.fleet
    rounds = improved = optimal = rejected = 0
    size = START_TASKS
    while not past(deadline - 0.05) and not (bound is not None and _meets(best, bound)):
        left = deadline - 0.05 - time.monotonic()
        if left < 0.02:
            break
        until = time.monotonic() + min(ROUND_S, left)
        rounds += 1
        placed = assign[:, 0] >= 0
        node_of = np.where(placed, f.gpu_node[np.maximum(assign[:, 0], 0)], NONE)
        end = ends(sp, assign, start)
        hood = _neighbourhood(sp, rng, assign, start, end, head, node_of, int(size))
        if hood is None:
            break  # nothing placed: nothing to move
        free, pinned, nodes, window = hood
        if pinned.size > MAX_PINNED:  # a model this large would take its time building
            size = max(MIN_TASKS, size * 0.8)
            continue
        sub, gpus = sub_schedule(sp, assign, start, end, free, pinned, nodes, window)
        tasks = np.concatenate([free, pinned])
        hint_assign = to_sub(gpus, f.n_gpus, assign[tasks])
        pins = {
            j: Pin(float(start[t]), float(end[t]), tuple(int(g) for g in hint_assign[j] if g >= 0))
            for j, t in enumerate(tasks.tolist())
            if j >= free.size
        }
        outside = np.ones(sp.n_tasks, dtype=bool)
        outside[free] = False
        floor = float(end[outside & placed].max(initial=0.0))
        began = time.monotonic()
        res = solve_schedule_window(
            sub,
            pins,
            floor,
            (hint_assign, start[tasks]),
            time_limit=until - began,
            workers=workers,
            seed=seed + rounds,
        )
        quick = res is not None and res[2] and time.monotonic() - began < 0.5 * ROUND_S
        size = min(MAX_TASKS, size * 1.25) if quick else max(MIN_TASKS, size * 0.8)
        if res is None:
            continue
        optimal += res[2]
        sub_assign, sub_start = res[0], res[1]
        if violations(sub, sub_assign, sub_start):
            rejected += 1  # float error past the model's rounding: never seen, but never kept
            continue
        new_assign, new_start = assign.copy(), start.copy()
        new_assign[free] = from_sub(gpus, sub_assign[: free.size])
        new_start[free] = sub_start[: free.size]
        value = objective(sp, new_assign, new_start)
        if value > best:  # (no tolerance: sideways moves within it would drift upwards)
            continue
        improved += value < best - 1e-9 * max(1.0, abs(best))
        assign, start, best = new_assign, new_start, value
    stats: dict[str, bool | int | float | str] = {
        "lns_rounds": rounds,
        "lns_improved": improved,
        "lns_optimal_rounds": optimal,
        "lns_rejected": rejected,
        "lns_tasks": int(size),
        "lns_gain": round(first - best, 9),
    }
    return ScheduleLnsResult(assign, start, best, stats)


def _neighbourhood(
    sp: ScheduleProgram,
    rng: np.random.Generator,
    assign: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    head: np.ndarray,
    node_of: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]] | None:
    """(free tasks, pinned tasks, nodes, window) drawn as the module docstring says; None when
    nothing is placed."""
    f = sp.fleet
    placed = np.flatnonzero(node_of >= 0)
    if not placed.size:
        return None
    wait = np.maximum(start[placed] - head[placed], 0.0) * np.maximum(sp.weight[placed], 1e-12)
    pick = wait > 1e-9 * np.maximum(1.0, np.abs(start[placed]))
    if pick.any():
        cand, w = placed[pick], wait[pick]
        s = int(rng.choice(cand, p=w / w.sum()))
    else:
        s = int(rng.choice(placed))
    usable = f.eligible_c[s, f.gpu_class] & f.gpu_ok
    others = np.setdiff1d(np.unique(f.gpu_node[usable]), [node_of[s]])
    extra = int(rng.integers(0, MAX_NODES)) if others.size else 0
    chosen = rng.choice(others, size=min(extra, others.size), replace=False) if extra else []
    nodes = np.unique(np.r_[node_of[s], chosen]).astype(np.int64)
    on = np.flatnonzero(np.isin(node_of, nodes))
    h = float(min(head[s], start[s]))
    later = on[(end[on] > h) & (on != s)]
    later = later[np.argsort(start[later], kind="stable")][: max(0, size - 1)]
    free = np.sort(np.r_[s, later]).astype(np.int64)
    a, b = float(start[free].min()), float(end[free].max())
    b += SLACK * (b - a) + 1e-3  # room for the model's rounding (schedule_cpsat.Pin)
    is_free = np.zeros(sp.n_tasks, dtype=bool)
    is_free[free] = True
    pinned = on[~is_free[on] & (start[on] < b) & (end[on] > a)]
    return free, pinned, nodes, (a, b)


__all__ = ["ScheduleLnsResult", "schedule_lns"]

r"""Large-neighbourhood search over a placement: free every task of a few nodes, add left-out tasks
that could go there, and solve that neighbourhood exactly with CP-SAT while every other task stays.

Neighbourhood. A left-out optional task is drawn with probability proportional to its drop penalty
(a node at random when none is left out); one of the nodes it could use starts the set :math:`N`,
which grows to `size` nodes with nodes that the tasks of :math:`N` (and the drawn task) could
use. The sub-problem (:func:`program.neighbourhood.sub_fleet`) holds every task placed on
:math:`N` and up to `DROPPED_PER_NODE` x `size` left-out tasks eligible on :math:`N` (drawn by
penalty). It is solved by :func:`solve_fleet_cpsat`, hinted with the current placement, for at most
`ROUND_S` seconds.

Every task of :math:`N` is in the sub-problem and every other task keeps its GPUs, so an accepted
placement keeps every rule; every objective term but the peak utilization is a sum over tasks,
GPUs and nodes, so the sub-problem's change is the whole program's (with a peak-utilization term
the whole objective is recomputed). A neighbourhood's placement is kept when it is no worse
(sideways moves welcome) and the caller's `accept` agrees. Each neighbourhood has between 1 and
`size` nodes, drawn uniformly; `size` adapts to the time a sub-problem takes: x1.25 after one that
took less than half of `ROUND_S`, x0.8 after one that took more, within [1, `MAX_NODES`].
Idea as in Shaw (1998) and the LNS of PyVRP and CP-SAT.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gpuplan.backends.fleet_cpsat import solve_fleet_cpsat
from gpuplan.interrupt import past
from gpuplan.program.fleet import FleetProgram
from gpuplan.program.neighbourhood import from_sub, sub_fleet, to_sub

#: Nodes in the first neighbourhood, and at most.
START_NODES = 3.0
MAX_NODES = 64.0
#: Left-out tasks a neighbourhood takes per node, at most.
DROPPED_PER_NODE = 8
#: Seconds one sub-problem may take at most.
ROUND_S = 0.3


@dataclass
class FleetLnsResult:
    """The best placement found (never worse than the start) and what the search did."""

    assign: np.ndarray
    objective: float
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


def fleet_lns(
    p: FleetProgram,
    assign: np.ndarray,
    *,
    deadline: float,
    workers: int = 1,
    seed: int = 0,
    accept: Callable[[np.ndarray], bool] | None = None,
) -> FleetLnsResult:
    """Improve the feasible placement `assign` until the monotonic `deadline` (module docstring)."""
    rng = np.random.default_rng(seed)
    assign = np.array(assign, dtype=np.int64)
    best = first = p.objective(assign)
    usable = p.gpu_ok
    rounds = improved = optimal = 0
    size = START_NODES
    while not past(deadline - 0.05):
        rounds += 1
        placed = assign[:, 0] >= 0
        node_of = np.where(placed, p.gpu_node[np.maximum(assign[:, 0], 0)], -1)
        nodes = _nodes(p, rng, assign, node_of, usable, int(rng.integers(1, int(size) + 1)))
        on = np.flatnonzero(np.isin(node_of, nodes))
        extra = _dropped(p, rng, placed, nodes, usable, DROPPED_PER_NODE * nodes.size)
        tasks = np.concatenate([on, extra])
        sub, gpus = sub_fleet(p, tasks, nodes)
        hint = to_sub(gpus, p.n_gpus, assign[tasks])
        until = min(deadline, time.monotonic() + ROUND_S)
        if until - time.monotonic() < 0.05:
            break
        began = time.monotonic()
        res = solve_fleet_cpsat(sub, deadline=until, workers=workers, seed=seed + rounds, hint=hint)
        optimal += res.stats.get("cpsat_status") == "OPTIMAL"
        quick = time.monotonic() - began < 0.5 * ROUND_S
        size = min(MAX_NODES, size * 1.25) if quick else max(1.0, size * 0.8)
        if not res.status.has_solution or res.objective is None:
            continue
        if p.w_balance > 0:
            new = assign.copy()
            new[tasks] = from_sub(gpus, res.assign)
            value = p.objective(new)
        else:
            value = best + res.objective - sub.objective(hint)
            new = None
        if value > best + 1e-9 * max(1.0, abs(best)):
            continue
        if new is None:
            new = assign.copy()
            new[tasks] = from_sub(gpus, res.assign)
        if accept is not None and not accept(new):
            continue
        improved += value < best - 1e-9 * max(1.0, abs(best))
        assign, best = new, value
    stats: dict[str, bool | int | float | str] = {
        "lns_rounds": rounds,
        "lns_improved": improved,
        "lns_optimal_rounds": optimal,
        "lns_nodes": int(size),
        "lns_gain": round(first - best, 9),
    }
    return FleetLnsResult(assign, p.objective(assign), stats)


def _eligible_nodes(p: FleetProgram, t: int, usable: np.ndarray) -> np.ndarray:
    return np.unique(p.gpu_node[p.eligible_c[t, p.gpu_class] & usable])


def _nodes(
    p: FleetProgram,
    rng: np.random.Generator,
    assign: np.ndarray,
    node_of: np.ndarray,
    usable: np.ndarray,
    size: int,
) -> np.ndarray:
    """The node set N (module docstring)."""
    dropped = np.flatnonzero((assign[:, 0] < 0) & p.optional & p.has_home())
    seeds: list[int] = []
    if dropped.size:
        w = p.penalty[dropped]
        d = int(rng.choice(dropped, p=w / w.sum())) if w.sum() > 0 else int(rng.choice(dropped))
        seeds.append(d)
        options = _eligible_nodes(p, d, usable)
        start = int(rng.choice(options)) if options.size else int(rng.integers(p.n_nodes))
    else:
        start = int(rng.integers(p.n_nodes))
    chosen = {start}
    for _ in range(4 * size):
        if len(chosen) >= size:
            break
        members = np.flatnonzero(np.isin(node_of, list(chosen)))
        pool = np.concatenate([members, np.array(seeds, dtype=np.int64)])
        if pool.size:
            options = np.setdiff1d(_eligible_nodes(p, int(rng.choice(pool)), usable), list(chosen))
        else:
            options = np.setdiff1d(np.arange(p.n_nodes), list(chosen))
        if options.size:
            chosen.add(int(rng.choice(options)))
    return np.array(sorted(chosen), dtype=np.int64)


def _dropped(
    p: FleetProgram,
    rng: np.random.Generator,
    placed: np.ndarray,
    nodes: np.ndarray,
    usable: np.ndarray,
    most: int,
) -> np.ndarray:
    """Left-out optional tasks with an eligible usable GPU on `nodes`, at most `most`, by penalty."""
    out = np.flatnonzero(~placed & p.optional)
    if not out.size or most <= 0:
        return np.zeros(0, dtype=np.int64)
    on = np.isin(p.gpu_node, nodes) & usable
    classes = np.unique(p.gpu_class[on])
    cand = out[p.eligible_c[out][:, classes].any(axis=1)]
    if cand.size > most:
        w = p.penalty[cand] + 1e-12
        cand = rng.choice(cand, size=most, replace=False, p=w / w.sum())
    return np.sort(cand).astype(np.int64)


__all__ = ["FleetLnsResult", "fleet_lns"]

r"""The sizing MILP: how many nodes of each offer, at least cost, so that the required work fits.

Formulation
-----------
Offers :math:`o` (GPUs per node :math:`K_o`, speed :math:`v_o`, on-demand price :math:`p_o` per
node-hour, node range :math:`[\underline n_o, \overline n_o]`, commitment discount :math:`\delta_o`
with at least :math:`m_o` committed nodes), horizon :math:`H`. Required tasks are grouped into
classes :math:`c` of equal (eligible offers :math:`E_c`, gang :math:`k_c`, deadline level
:math:`\ell_c`); :math:`W_c = \sum_{t \in c} k_t w_t` is the class's GPU-hours on the reference GPU.
Deadline levels :math:`D_1 < \dots < D_L = H` are the distinct deadlines (at most
``MAX_LEVELS`` of them, always including H); a task with deadline d belongs to the first level
:math:`D_\ell \ge d`.

Variables: integer :math:`a_o` (on-demand nodes), :math:`b_o` (committed nodes), binary :math:`y_o`
(offer committed; only when :math:`\delta_o > 0`), continuous :math:`x_{co} \ge 0` (reference
GPU-hours of class c served by offer o, :math:`o \in E_c`).

.. math::

    \min \; H \sum_o p_o \,(a_o + (1 - \delta_o)\, b_o)

    \text{s.t.}\quad \sum_{o \in E_c} x_{co} = W_c \quad \forall c                          \qquad (1)

    \sum_{c:\, \ell_c \le \ell} x_{co} / v_o \;\le\; D_\ell K_o (a_o + b_o) \quad \forall o, \ell  \qquad (2)

    \sum_{c:\, \ell_c \le \ell,\ k_c > K_o/2} x_{co} / (k_c v_o) \;\le\; D_\ell (a_o + b_o)
        \quad \forall o, \ell                                                            \qquad (3)

    \underline n_o \le a_o + b_o \le \overline n_o, \quad m_o y_o \le b_o \le \overline n_o y_o,
    \quad a_o \le \overline n_o (1 - y_o)                                                \qquad (4)

(2) is the GPU time of each offer up to each deadline: the tasks due by :math:`D_\ell` that run
on o finish by :math:`D_\ell`, so their GPU-hours fit in :math:`D_\ell K_o n_o`. (3) holds for
gangs larger than half a node: two of them never share a node at once, so their durations add up
per node. Both hold for every real schedule, and (1) lets a class's work split across offers
(and across nodes), so the program is a *relaxation*: its optimum and its LP relaxation are lower
bounds on the cost of any fleet that truly fits. What it does not see (bin packing of durations on
single GPUs, gangs' idle GPUs, the order of deadlines within a GPU) is handled by the proof
(:mod:`gpuplan.capacity.prove`), which adds capacity when the assignment does not fit.

Optional tasks do not enter the program. Extra constraints (``Cuts``) carry the proof's rounds:
:math:`n_o \ge \text{floor}_o` and :math:`\sum_o \alpha_o n_o \ge r` (more capacity on given
offers); ``forbid`` fixes :math:`n_o = 0` and ``exclude`` cuts off a node-count vector (alternatives).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from ortools.linear_solver import pywraplp

from gpuplan.capacity.prepare import Prepared

log = logging.getLogger("gpuplan")

#: SCIP settings that make a solve repeatable: one thread, fixed random seed and permutation
#: (with a time limit that is hit the incumbent can still depend on the machine's speed).
SCIP_PARAMS = (
    "randomization/randomseedshift = 0\nrandomization/permutationseed = 0\nrandomization/lpseed = 0\n"
)

#: Largest number of deadline levels in the program (a subset of levels keeps it a relaxation).
MAX_LEVELS = 32


@dataclass
class Cuts:
    """Constraints added by proof rounds and alternatives."""

    floor: dict[int, int] = field(default_factory=dict)  # offer -> least nodes
    at_least: list[tuple[dict[int, float], float]] = field(default_factory=list)  # sum coef x n_o >= least
    forbid: tuple[int, ...] = ()
    exclude: list[tuple[int, ...]] = field(default_factory=list)  # node-count vectors to exclude


@dataclass(frozen=True)
class Sizing:
    """A solution of the sizing program (or its LP relaxation)."""

    status: str  # 'optimal', 'feasible', 'infeasible', 'unknown'
    cost: float | None
    nodes: tuple[int, ...] | None  # per offer (rounded values for the LP)
    committed: tuple[bool, ...] | None
    bound: float | None
    wall_s: float
    lp_nodes: tuple[float, ...] | None = None
    flow: np.ndarray | None = None  # [C, O] reference GPU-hours of each class per offer


def _levels(deadline: np.ndarray, horizon: float) -> np.ndarray:
    """Deadline levels: the distinct deadlines, or MAX_LEVELS quantiles of them, ending at H."""
    uniq = np.unique(np.minimum(deadline, horizon))
    if uniq.size > MAX_LEVELS - 1:
        uniq = np.unique(np.quantile(uniq, np.linspace(0, 1, MAX_LEVELS - 1), method="higher"))
    return np.unique(np.append(uniq, horizon))


@dataclass(frozen=True)
class _Classes:
    elig: np.ndarray  # [C, O] bool
    gang: np.ndarray  # [C]
    level: np.ndarray  # [C]
    work: np.ndarray  # [C] reference GPU-hours (gang x work)
    levels: np.ndarray  # [L]
    task_class: np.ndarray  # [T] class of each task, -1 for optional or unplaceable ones


def classes(prep: Prepared) -> _Classes:
    """Group required, placeable tasks by (eligible offers, gang, deadline level)."""
    req = np.flatnonzero(~prep.optional & prep.eligible.any(axis=1))
    levels = _levels(prep.deadline[req], prep.horizon) if req.size else np.array([prep.horizon])
    lev = np.searchsorted(levels, prep.deadline[req] * (1 - 1e-12))
    lev = np.minimum(lev, levels.size - 1)
    mask_bits = prep.eligible[req].astype(np.int64) @ (1 << np.arange(prep.eligible.shape[1], dtype=np.int64))
    keys = np.stack([mask_bits, prep.gang[req], lev], axis=1) if req.size else np.zeros((0, 3), np.int64)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    work = np.zeros(uniq.shape[0])
    np.add.at(work, inv, prep.work[req] * prep.gang[req])
    n_o = prep.eligible.shape[1]
    elig = ((uniq[:, :1] >> np.arange(n_o)[None, :]) & 1).astype(bool)
    task_class = np.full(prep.work.shape[0], -1, dtype=np.int64)
    task_class[req] = inv
    return _Classes(
        elig=elig, gang=uniq[:, 1], level=uniq[:, 2], work=work, levels=levels, task_class=task_class
    )


def solve_sizing(
    prep: Prepared,
    *,
    integer: bool = True,
    cuts: Cuts | None = None,
    time_limit_s: float = 10.0,
    price_factor: np.ndarray | None = None,
    cls: _Classes | None = None,
) -> Sizing:
    """Build and solve the program (module docstring); `integer=False` gives the LP relaxation."""
    started = time.monotonic()
    cuts = cuts or Cuts()
    cls = cls or classes(prep)
    offers = prep.catalog.offers
    n_o = len(offers)
    horizon = prep.horizon
    price = prep.price * (1.0 if price_factor is None else price_factor)
    solver = pywraplp.Solver.CreateSolver("SCIP" if integer else "GLOP")
    if solver is None:  # pragma: no cover - OR-Tools ships both
        raise RuntimeError("OR-Tools has no SCIP/GLOP backend")
    inf = solver.infinity()
    a, b, y, n = [], [], [], []
    for o, off in enumerate(offers):
        hi = 0 if o in cuts.forbid else off.max_nodes
        lo = max(off.min_nodes, cuts.floor.get(o, 0))
        if lo > hi:
            return Sizing("infeasible", None, None, None, None, time.monotonic() - started)
        make = solver.IntVar if integer else solver.NumVar
        a.append(make(0, hi, f"a{o}"))
        has_commit = off.commit_discount > 0 and off.commit_min_nodes <= hi
        b.append(make(0, hi if has_commit else 0, f"b{o}"))
        y.append(make(0, 1 if has_commit else 0, f"y{o}"))
        total = a[o] + b[o]
        n.append(total)
        solver.Add(total >= lo)
        solver.Add(total <= hi)
        if has_commit:
            solver.Add(b[o] >= off.commit_min_nodes * y[o])
            solver.Add(b[o] <= hi * y[o])
            solver.Add(a[o] <= hi * (1 - y[o]))
    # (1) each class's work is served by its eligible offers.
    x: dict[tuple[int, int], pywraplp.Variable] = {}
    for c in range(cls.work.shape[0]):
        vars_c = []
        for o in np.flatnonzero(cls.elig[c]):
            x[c, int(o)] = solver.NumVar(0, inf, "")
            vars_c.append(x[c, int(o)])
        solver.Add(solver.Sum(vars_c) == float(cls.work[c]))
    # (2) GPU time per offer and deadline level; (3) node time of big gangs.
    for o in range(n_o):
        members = [c for c in range(cls.work.shape[0]) if cls.elig[c, o]]
        if not members:
            continue
        big = [c for c in members if cls.gang[c] * 2 > prep.per_node[o]]
        for lv, d in enumerate(cls.levels):
            due = [c for c in members if cls.level[c] <= lv]
            if not due:
                continue
            solver.Add(
                solver.Sum([x[c, o] for c in due]) * (1.0 / prep.speed[o]) <= d * prep.per_node[o] * n[o]
            )
            due_big = [c for c in big if cls.level[c] <= lv]
            if due_big:
                solver.Add(
                    solver.Sum([x[c, o] * (1.0 / (cls.gang[c] * prep.speed[o])) for c in due_big]) <= d * n[o]
                )
    for coef, least in cuts.at_least:
        solver.Add(solver.Sum([c * n[o] for o, c in coef.items()]) >= least)
    if integer:
        for vec in cuts.exclude:
            _exclude(solver, n, vec, offers)
    disc = np.array([off.commit_discount for off in offers])
    solver.Minimize(solver.Sum([horizon * price[o] * (a[o] + (1 - disc[o]) * b[o]) for o in range(n_o)]))
    solver.SetTimeLimit(max(1, int(1000 * time_limit_s)))
    if integer:
        solver.SetNumThreads(1)
        solver.SetSolverSpecificParametersAsString(SCIP_PARAMS)
    code = solver.Solve()
    wall = time.monotonic() - started
    if code == pywraplp.Solver.INFEASIBLE:
        return Sizing("infeasible", None, None, None, None, wall)
    if code not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return Sizing("unknown", None, None, None, None, wall)
    cost = float(solver.Objective().Value())
    if not integer:
        vals = tuple(float(v.solution_value()) for v in n)
        return Sizing("optimal", cost, None, None, cost, wall, lp_nodes=vals)
    nodes = tuple(round(a[o].solution_value() + b[o].solution_value()) for o in range(n_o))
    committed = tuple(round(b[o].solution_value()) > 0 for o in range(n_o))
    bound = float(solver.Objective().BestBound()) if code == pywraplp.Solver.FEASIBLE else cost
    status = "optimal" if code == pywraplp.Solver.OPTIMAL else "feasible"
    flow = np.zeros(cls.elig.shape)
    for (c, o), var in x.items():
        flow[c, o] = var.solution_value()
    cost = fleet_cost(prep, nodes, committed, price_factor)
    return Sizing(status, cost, nodes, committed, bound, wall, flow=flow)


def balanced_flow(prep: Prepared, cls: _Classes, nodes: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Split each class's work over the offers of a fixed fleet, leaving every offer the same share
    of slack: the LP of constraints (1)-(3) with capacities scaled by u, minimising u (then the sum
    of the offers' own utilizations). GLOP, so the split is the same on every run. Returns the
    flow [C, O] in reference GPU-hours and u (above 1 when the aggregate work does not fit);
    classes no offer of the fleet can take keep no flow."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:  # pragma: no cover
        raise RuntimeError("OR-Tools has no GLOP backend")
    n_c, n_o = cls.elig.shape
    present = np.array(nodes) > 0
    u = solver.NumVar(0, solver.infinity(), "u")
    uo = [solver.NumVar(0, solver.infinity(), f"u{o}") for o in range(n_o)]
    x: dict[tuple[int, int], pywraplp.Variable] = {}
    for c in range(n_c):
        offs = [int(o) for o in np.flatnonzero(cls.elig[c] & present)]
        if not offs:
            continue
        for o in offs:
            x[c, o] = solver.NumVar(0, solver.infinity(), "")
        solver.Add(solver.Sum([x[c, o] for o in offs]) == float(cls.work[c]))
    for o in np.flatnonzero(present):
        o = int(o)
        solver.Add(uo[o] <= u)
        members = [c for c in range(n_c) if (c, o) in x]
        big = [c for c in members if cls.gang[c] * 2 > prep.per_node[o]]
        for lv, d in enumerate(cls.levels):
            due = [c for c in members if cls.level[c] <= lv]
            if due:
                cap = float(d * prep.per_node[o] * nodes[o] * prep.speed[o])
                solver.Add(solver.Sum([x[c, o] for c in due]) <= cap * uo[o])
            due_big = [c for c in big if cls.level[c] <= lv]
            if due_big:
                cap = float(d * nodes[o] * prep.speed[o])
                solver.Add(solver.Sum([x[c, o] * (1.0 / cls.gang[c]) for c in due_big]) <= cap * uo[o])
    solver.Minimize(1000.0 * u + solver.Sum(uo))
    flow = np.zeros((n_c, n_o))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return flow, float("inf")
    for (c, o), var in x.items():
        flow[c, o] = max(0.0, var.solution_value())
    return flow, float(u.solution_value())


def _exclude(solver: pywraplp.Solver, n: list, vec: tuple[int, ...], offers: list) -> None:
    """No-good cut: the node-count vector differs from `vec` in at least one offer."""
    diffs = []
    for o, (expr, v) in enumerate(zip(n, vec, strict=True)):
        hi = offers[o].max_nodes
        up = solver.BoolVar("")  # n_o >= v + 1 when set
        down = solver.BoolVar("")  # n_o <= v - 1 when set
        solver.Add(expr >= (v + 1) * up)
        solver.Add(expr <= v - 1 + (hi + 1) * (1 - down))
        if v == 0:
            solver.Add(down == 0)
        diffs.extend([up, down])
    solver.Add(solver.Sum(diffs) >= 1)


def fleet_cost(
    prep: Prepared,
    nodes: tuple[int, ...],
    committed: tuple[bool, ...],
    price_factor: np.ndarray | None = None,
) -> float:
    """Total cost of a fleet over the horizon, committed offers at their discounted price."""
    price = prep.price * (1.0 if price_factor is None else price_factor)
    total = 0.0
    for o, off in enumerate(prep.catalog.offers):
        rate = price[o] * ((1 - off.commit_discount) if committed[o] else 1.0)
        total += nodes[o] * rate * prep.horizon
    return total


def best_commitment(prep: Prepared, nodes: tuple[int, ...]) -> tuple[bool, ...]:
    """Commit an offer exactly when its node count qualifies and it has a discount."""
    return tuple(
        off.commit_discount > 0 and nodes[o] >= off.commit_min_nodes
        for o, off in enumerate(prep.catalog.offers)
    )


__all__ = [
    "MAX_LEVELS",
    "SCIP_PARAMS",
    "Cuts",
    "Sizing",
    "balanced_flow",
    "best_commitment",
    "classes",
    "fleet_cost",
    "solve_sizing",
]

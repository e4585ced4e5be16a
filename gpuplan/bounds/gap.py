r"""Lower bounds independent of any incumbent: LP relaxation (GLOP) and the Lagrangian bound.

Relaxing every capacity constraint with multipliers :math:`\lambda_{rg} \ge 0` gives, for any such
:math:`\lambda`,

.. math::

    L(\lambda) = \sum_t \min\Big(\min_{g:(t,g) \in E} \big(c_{tg} + \sum_r \lambda_{rg} a_{rtg}\big),
    \; p_t\Big) - \sum_{r,g} \lambda_{rg} b_{rg} \;\le\; \text{OPT}

(:math:`p_t = \infty` for required tasks). With :math:`\lambda` = the capacity duals of the LP
relaxation, :math:`L(\lambda)` equals the LP bound. The reported bound is always *recomputed* from
:math:`\lambda` with this formula, over every eligible pair and the user's unrounded loads, so it is
valid whatever the LP solver's precision or however far column generation got.

The LP itself is solved by column generation: it starts from the cheapest few GPUs of each task,
prices all pairs with the duals, and adds the pairs of negative reduced cost until none is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gpuplan.interrupt import past
from gpuplan.program.gap import Program


@dataclass
class LPResult:
    """LP relaxation outcome: capacity multipliers, fractional solution and the bound."""

    lam: np.ndarray  # float64 [R, G], >= 0
    x: np.ndarray  # float64 [T, G] fractional assignment (0 outside the generated columns)
    bound_int: float  # Lagrangian bound in integer cost units (float loads)
    lp_value: float  # objective the LP solver reported (integer cost units)
    complete: bool  # column generation reached a proven LP optimum
    rounds: int
    columns: int
    time_s: float
    u: np.ndarray | None = None  # float64 [T]: the assignment rows' duals (integer cost units)


def reduced_costs(program: Program, lam: np.ndarray) -> np.ndarray:
    """c_tg + Σ_r λ_rg a_rtg over eligible pairs (user loads scaled to integer-cost units), +inf elsewhere."""
    rc = program.cost_int.astype(np.float64) + np.einsum("rg,rtg->tg", lam, _user_load(program))
    return np.where(program.eligible, rc, np.inf)


def _user_load(program: Program) -> np.ndarray:
    """Loads in the integer-load units but unrounded (float loads x scale)."""
    return program.load * program.load_scale[:, None, None]


def _user_capacity(program: Program) -> np.ndarray:
    """Capacities in the integer-load units but unrounded, [R, G]."""
    return program.capacity * program.load_scale[:, None]


def _cheapest(program: Program, rc: np.ndarray) -> np.ndarray:
    """Per task, the smallest reduced cost, or the drop penalty when that is lower (optional tasks)."""
    best = rc.min(axis=1, initial=np.inf)
    return np.where(program.optional, np.minimum(best, program.penalty_int), best)


def lagrangian_bound(program: Program, lam: np.ndarray) -> float:
    """L(λ) in integer cost units: a valid lower bound for any λ >= 0 (see module docstring)."""
    lam = np.maximum(lam, 0.0)
    best = _cheapest(program, reduced_costs(program, lam))
    if not np.all(np.isfinite(best)):
        return float("inf")  # a required task with no eligible GPU: infeasible
    return float(best.sum() - (lam * _user_capacity(program)).sum())


def fixable(program: Program, lp: LPResult, upper_int: float) -> np.ndarray:
    """Pairs that no solution cheaper than `upper_int` can use (reduced-cost fixing), bool [T, G].

    For any feasible x: cost(x) >= L(λ) + Σ_t (rc[t, g_t] - min_g rc[t, g]), so a pair whose
    reduced-cost excess alone lifts L(λ) to `upper_int` or beyond cannot improve on it.
    """
    rc = reduced_costs(program, np.maximum(lp.lam, 0.0))
    excess = rc - _cheapest(program, rc)[:, None]
    return program.eligible & (lp.bound_int + excess > upper_int + 1e-6 * max(1.0, abs(upper_int)))


def subgradient(
    program: Program, upper_int: float | None, deadline: float, iterations: int = 300
) -> tuple[np.ndarray, float]:
    """Lagrangian multipliers by subgradient ascent (Polyak steps); returns (λ, best L(λ)).

    Cheap (one numpy pass per step) and used to pick good starting columns for the LP.
    """
    p = program
    load = _user_load(p)
    cap = _user_capacity(p)
    cost = np.where(p.eligible, p.cost_int.astype(np.float64), np.inf)
    pen = np.where(p.optional, p.penalty_int.astype(np.float64), np.inf)
    lam = np.zeros_like(cap)
    best_lam, best_val = lam.copy(), -np.inf
    theta, stall = 1.0, 0
    rows = np.arange(p.n_tasks)
    for _ in range(iterations):
        if past(deadline):
            break
        rc = cost + np.einsum("rg,rtg->tg", lam, load)
        g = rc.argmin(axis=1)
        val_t = rc[rows, g]
        placed = val_t < pen
        value = float(np.where(placed, val_t, pen).sum() - (lam * cap).sum())
        if not np.isfinite(value):
            break
        if not np.isfinite(best_val) or value > best_val + 1e-9 * max(1.0, abs(best_val)):
            best_lam, best_val, stall = lam.copy(), value, 0
        else:
            stall += 1
            if stall >= 15:
                theta, stall = theta / 2, 0
                if theta < 1e-4:
                    break
        used = np.zeros_like(cap)
        for r in range(p.n_resources):
            np.add.at(used[r], g[placed], load[r, rows[placed], g[placed]])
        sub = used - cap
        sub = np.where((lam <= 0) & (sub < 0), 0.0, sub)
        norm = float((sub**2).sum())
        if norm <= 0:
            break  # λ is optimal for the relaxation
        target = upper_int if upper_int is not None and upper_int > value else abs(value) * 1.01 + 1.0
        lam = np.maximum(0.0, lam + theta * (target - value) / norm * sub)
    return best_lam, best_val


def _solve_restricted(
    program: Program, cols: np.ndarray, deadline: float
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray] | None:
    """GLOP on the columns in `cols` (plus one drop/artificial column per task).

    Returns (value, x, u, lam) or None when GLOP does not reach an optimum. The model is rebuilt
    each round: GLOP's incremental re-solve after adding columns can end ABNORMAL.
    """
    from ortools.linear_solver import pywraplp

    p = program
    t_n, g_n, r_n = p.n_tasks, p.n_gpus, p.n_resources
    load = _user_load(p)
    cap = _user_capacity(p)
    cost = p.cost_int.astype(np.float64)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        raise RuntimeError("OR-Tools GLOP is not available")
    solver.SetTimeLimit(max(1, int((deadline - time.monotonic()) * 1000)))
    rows = [solver.Constraint(1.0, 1.0) for _ in range(t_n)]
    cap_rows = [
        [solver.Constraint(-solver.infinity(), float(cap[r, g])) for g in range(g_n)] for r in range(r_n)
    ]
    objective = solver.Objective()
    objective.SetMinimization()
    # A drop (optional) or artificial (required) column per task keeps every restricted LP feasible.
    big = 4.0 * float(np.abs(cost[p.eligible]).max(initial=1.0)) + 1.0
    for t in range(t_n):
        v = solver.NumVar(0.0, 1.0, "")
        rows[t].SetCoefficient(v, 1.0)
        objective.SetCoefficient(v, float(p.penalty_int[t]) if p.optional[t] else big)
    ts, gs = np.nonzero(cols)
    vs = []
    for t, g in zip(ts.tolist(), gs.tolist(), strict=True):
        v = solver.NumVar(0.0, 1.0, "")
        rows[t].SetCoefficient(v, 1.0)
        for r in range(r_n):
            if load[r, t, g]:
                cap_rows[r][g].SetCoefficient(v, float(load[r, t, g]))
        objective.SetCoefficient(v, float(cost[t, g]))
        vs.append(v)
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    x = np.zeros((t_n, g_n))
    x[ts, gs] = [v.solution_value() for v in vs]
    u = np.array([c.dual_value() for c in rows])
    lam = np.maximum(0.0, -np.array([[c.dual_value() for c in row] for row in cap_rows]))
    return solver.Objective().Value(), x, u, lam


def lp_relaxation(
    program: Program,
    deadline: float,
    start_columns: int = 8,
    extra: np.ndarray | None = None,
    upper_int: float | None = None,
) -> LPResult | None:
    """Solve the LP relaxation by column generation with GLOP; None if no round finished in time.

    The first columns are each task's cheapest GPUs by cost and by reduced cost under multipliers
    from a short subgradient ascent (`upper_int`, an incumbent value, sets its step targets).
    """
    started = time.monotonic()
    p = program
    if p.n_tasks == 0 or p.n_gpus == 0:
        return None
    k = min(start_columns, p.n_gpus)
    cols = np.zeros(p.eligible.shape, dtype=bool)
    lam0, _ = subgradient(p, upper_int, started + 0.15 * max(0.0, deadline - started))
    for score in (p.cost_int.astype(np.float64), reduced_costs(p, lam0)):
        ranked = np.argsort(np.where(p.eligible, score, np.inf), axis=1)[:, :k]
        np.put_along_axis(cols, ranked, True, axis=1)
    if extra is not None:
        cols |= extra
    cols &= p.eligible
    rounds, complete, best = 0, False, None
    while not past(deadline):
        rounds += 1
        res = _solve_restricted(p, cols, deadline)
        if res is None:
            break
        best = res
        _, _, u, lam = res
        rc = reduced_costs(p, lam) - u[:, None]
        neg = (rc < -1e-7) & ~cols
        if not neg.any():
            complete = True
            break
        top = np.argsort(np.where(neg, rc, np.inf), axis=1)[:, :8]  # up to 8 new columns per task
        add = np.zeros_like(neg)
        np.put_along_axis(add, top, True, axis=1)
        cols |= add & neg
    if best is None:
        return None
    value, x, u, lam = best
    return LPResult(
        lam=lam,
        x=x,
        bound_int=lagrangian_bound(p, lam),
        lp_value=value,
        complete=complete,
        rounds=rounds,
        columns=int(cols.sum()),
        time_s=time.monotonic() - started,
        u=u,
    )

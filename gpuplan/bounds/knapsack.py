r"""Lagrangian relaxation of the assignment constraints: one 0-1 knapsack per GPU.

Fisher, Jaikumar & Van Wassenhove (1986). With multipliers :math:`u_t` on "task t is placed once",

.. math::

    L(u) = \sum_t u_t + \sum_{t \text{ optional}} \min(0, p_t - u_t)
           + \sum_g \min_{x \in K_g} \sum_t (c_{tg} - u_t)\, x_{tg} \;\le\; \text{OPT}

for every :math:`u` (:math:`K_g`: the 0-1 vectors of eligible tasks whose integer loads fit GPU g).
The knapsacks have no integrality property, so :math:`\max_u L(u)` can beat the LP bound on tight
programs. Each knapsack is a dynamic program over the integer capacity, so this only applies to
single-resource programs of small total size (`applicable`).

Forcing task t onto GPU g in the relaxed problem gives a lower bound on every solution that uses
(t, g): knapsack g with t forced in, every other knapsack with t left out, the drop term gone. When that
bound exceeds the incumbent minus one (integer costs), the pair is fixed to 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gpuplan import native
from gpuplan.interrupt import past
from gpuplan.program.gap import Program

#: Largest Σ_g (eligible tasks of g) x (capacity of g + 1) the dynamic programs are run on. gapd-6
#: (20x200, capacity ~800) is ~3.3e6 cells and one evaluation of L(u) takes ~1.5 ms there; d10400
#: (10x400) is ~6.4e6; Yagiura's larger types (1600 tasks, capacities in the thousands) are 1e8 cells
#: or more and stay untouched.
MAX_CELLS = 10_000_000
_INF = np.inf
STALL = 5
THETA0 = 0.5


def applicable(program: Program) -> bool:
    """Single resource, integer program equal to the user's, and small knapsacks."""
    p = program
    if p.n_resources != 1 or not p.loads_exact or p.n_tasks == 0 or p.n_gpus == 0:
        return False
    cap = p.capacity_int[0]
    if np.any(cap < 0) or np.any(p.load_int[0][p.eligible] < 0):
        return False
    cells = int((p.eligible.sum(axis=0) * (cap + 1)).sum())
    return cells <= MAX_CELLS


@dataclass
class KnapsackLagrangian:
    """Best multipliers found, the bound L(u) at them and the per-pair forcing penalties."""

    u: np.ndarray  # float64 [T]
    bound_int: float  # L(u) in integer cost units (a proven lower bound up to float rounding)
    penalty: np.ndarray  # float64 [T, G]: L(u) + penalty <= any solution using (t, g); inf: never
    assign: np.ndarray  # int64 [T]: the relaxed solution's GPU per task (-1: none), a heuristic hint
    z: np.ndarray  # float64 [G]: each GPU's knapsack optimum at u
    iterations: int
    time_s: float


def knapsacks(
    w: np.ndarray, load: np.ndarray, eligible: np.ndarray, cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each GPU's 0-1 knapsack min Σ w x over its eligible tasks with w < 0 within its capacity:
    (z [G], chosen bool [T, G]). Compiled (`_gapbb.knapsacks`), since the subgradient runs it every
    step; without the compiled core, the same dynamic programs in numpy (`knapsacks_numpy`)."""
    t, g = w.shape
    if not native.available() or t == 0 or g == 0:
        return knapsacks_numpy(w, load, eligible, cap)
    z = np.zeros(g)
    x = np.zeros((t, g), dtype=np.uint8)
    native.core().knapsacks(
        t,
        g,
        np.ascontiguousarray(w, dtype=np.float64),
        np.ascontiguousarray(load, dtype=np.int64),
        np.ascontiguousarray(eligible, dtype=np.uint8),
        np.ascontiguousarray(cap, dtype=np.int64),
        x,
        z,
    )
    return z, x.astype(bool)


def knapsacks_numpy(
    w: np.ndarray, load: np.ndarray, eligible: np.ndarray, cap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`knapsacks` in numpy, for installs without the compiled core: the same items (eligible, w < 0,
    load within the capacity), the same rows and the same choice on ties, one numpy row per item."""
    t, g = w.shape
    z = np.zeros(g)
    x = np.zeros((t, g), dtype=bool)
    for j in range(g):
        c = int(cap[j])
        if c < 0:
            raise ValueError("knapsacks: negative capacity")
        a = load[:, j]
        items = np.flatnonzero(eligible[:, j] & (w[:, j] < 0) & (a <= c) & (a >= 0))
        f = np.zeros(c + 1)
        take = np.zeros((items.size, c + 1), dtype=bool)
        for k, i in enumerate(items.tolist()):
            ai = int(a[i])
            cand = f[: c + 1 - ai] + w[i, j]  # a copy: the row reads the previous one (0-1 knapsack)
            better = cand < f[ai:]
            take[k, ai:] = better
            f[ai:][better] = cand[better]
        z[j] = f[c]
        for k in range(items.size - 1, -1, -1):
            if take[k, c]:
                x[items[k], j] = True
                c -= int(a[items[k]])
    return z, x


def _prefix(w: np.ndarray, a: np.ndarray, items: np.ndarray, cap: int) -> np.ndarray:
    """f[k, c]: min cost of the first k of `items` within load c; shape [len(items) + 1, cap + 1]."""
    f = np.zeros((items.size + 1, cap + 1))
    for k, i in enumerate(items.tolist()):
        f[k + 1] = f[k]
        ai = int(a[i])
        if ai <= cap:
            np.minimum(f[k + 1, ai:], f[k, : cap + 1 - ai] + w[i], out=f[k + 1, ai:])
    return f


def _penalties(
    w: np.ndarray, a: np.ndarray, elig: np.ndarray, cap: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """For one GPU: (z, inc, exc) with z the knapsack optimum, inc[t] the optimum with t forced in
    (inf when t does not fit or is ineligible) and exc[t] the optimum with t left out."""
    n = w.size
    items = np.flatnonzero(elig & (w < 0))
    fwd = _prefix(w, a, items, cap)
    bwd = _prefix(w, a, items[::-1], cap)[::-1]  # bwd[k]: items k.. (in `items` order)
    z = float(fwd[-1, cap])
    inc = np.full(n, _INF)
    exc = np.full(n, z)
    others = np.flatnonzero(elig & (w >= 0))  # not in the DP: leaving them out changes nothing
    fits = others[a[others] <= cap]
    inc[fits] = w[fits] + fwd[-1, cap - a[fits]]
    for k, i in enumerate(items.tolist()):
        pre, suf = fwd[k], bwd[k + 1]
        exc[i] = float((pre + suf[::-1]).min())  # min_c pre[c] + suf[cap - c]
        ai = int(a[i])
        if ai <= cap:
            rest = cap - ai
            inc[i] = w[i] + float((pre[: rest + 1] + suf[rest::-1]).min())
    return z, inc, exc


def _evaluate(
    p: Program, u: np.ndarray, cost: np.ndarray, load: np.ndarray, cap: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """L(u), x [T, G] chosen by the knapsacks, and the optional tasks' drop choice [T]."""
    w = cost - u[:, None]
    value = float(u.sum())
    drop = p.optional & (p.penalty_int - u < 0)
    value += float(np.where(drop, p.penalty_int - u, 0.0).sum())
    z, x = knapsacks(w, load, p.eligible, cap)
    return value + float(z.sum()), x, drop


def knapsack_lagrangian(
    program: Program,
    u0: np.ndarray,
    upper_int: float | None,
    deadline: float,
    iterations: int = 400,
) -> KnapsackLagrangian:
    """Subgradient ascent on L(u) from `u0` (e.g. the LP's assignment duals) until `deadline`."""
    started = time.monotonic()
    p = program
    cost = p.cost_int.astype(np.float64)
    load = p.load_int[0]
    cap = p.capacity_int[0]
    u = np.asarray(u0, dtype=np.float64).copy()
    best_u, best_val, best_x, best_drop = u.copy(), -_INF, None, None
    theta, stall, it = THETA0, 0, 0
    for it in range(1, iterations + 1):  # noqa: B007 - `it` is reported
        if past(deadline):
            break
        value, x, drop = _evaluate(p, u, cost, load, cap)
        if best_x is None or value > best_val + 1e-9 * max(1.0, abs(best_val)):
            best_u, best_val, best_x, best_drop, stall = u.copy(), value, x, drop, 0
        else:
            stall += 1
            if stall >= STALL:
                theta, stall = theta / 2, 0
                if theta < 1e-3:
                    break
                u = best_u.copy()  # restart from the best point with shorter steps
                x, drop = best_x, best_drop
        sub = 1.0 - x.sum(axis=1) - drop
        norm = float((sub**2).sum())
        if norm <= 0:
            break  # the relaxed solution is feasible: u is optimal
        gap = upper_int - value if upper_int is not None and upper_int > value else 0.01 * abs(value) + 1.0
        u = u + theta * gap / norm * sub
    # the penalties at the best u (and its bound, recomputed with the same dynamic programs)
    u = best_u
    w = cost - u[:, None]
    penalty = np.full(p.eligible.shape, _INF)
    z = np.zeros(p.n_gpus)
    inc = np.full(p.eligible.shape, _INF)
    exc = np.zeros(p.eligible.shape)
    for g in range(p.n_gpus):
        z[g], inc[:, g], exc[:, g] = _penalties(w[:, g], load[:, g], p.eligible[:, g], int(cap[g]))
    drop_term = np.where(p.optional, np.minimum(0.0, p.penalty_int - u), 0.0)
    bound = float(u.sum() + drop_term.sum() + z.sum())
    bound -= 1e-9 * max(1.0, abs(bound))  # float rounding in the dynamic programs
    out_all = (exc - z[None, :]).sum(axis=1)  # t left out of every knapsack
    penalty = (inc - z[None, :]) + (out_all[:, None] - (exc - z[None, :])) - drop_term[:, None]
    penalty = np.where(p.eligible, penalty, _INF)
    assign = np.full(p.n_tasks, -1, dtype=np.int64)
    if best_x is not None:
        rows, cols = np.nonzero(best_x)
        assign[rows] = cols  # a task in several knapsacks keeps the last; repaired by the caller
    return KnapsackLagrangian(
        u=u,
        bound_int=bound,
        penalty=penalty,
        assign=assign,
        z=z,
        iterations=it,
        time_s=time.monotonic() - started,
    )


def knapsack_fixable(program: Program, kl: KnapsackLagrangian, upper_int: float) -> np.ndarray:
    """Pairs no solution cheaper than `upper_int` can use, bool [T, G] (integer costs assumed)."""
    tol = 1e-6 * max(1.0, abs(upper_int))
    return program.eligible & (kl.bound_int + kl.penalty > upper_int - 1.0 + tol)


def local_multipliers(
    cost: np.ndarray,
    load: np.ndarray,
    eligible: np.ndarray,
    cap: np.ndarray,
    u0: np.ndarray,
    target: float,
    steps: int,
    theta: float = 1.0,
) -> tuple[np.ndarray, float]:
    """A few subgradient steps on L(u) of a GAP over `cost` [T, G] (every task required), from `u0`
    with Polyak steps aimed at `target` + 1: the best u and L(u). Stops once L(u) > `target` (then no
    plan costs <= target). Used on a large-neighbourhood subproblem, whose own multipliers bound it
    more tightly than the whole program's."""
    u = np.asarray(u0, dtype=np.float64).copy()
    if cost.shape[0] == 0 or cost.shape[1] == 0:
        return u, 0.0 if cost.shape[0] == 0 else -_INF  # no task: cost 0; no GPU: no bound
    best_u, best = u.copy(), -_INF
    for _ in range(steps):
        z, x = knapsacks(cost - u[:, None], load, eligible, cap)
        value = float(u.sum() + z.sum())
        if value > best:
            best_u, best = u.copy(), value
        if value > target + 1e-6 * max(1.0, abs(target)):
            break
        sub = 1.0 - x.sum(axis=1)
        norm = float((sub**2).sum())
        if norm <= 0:
            break  # the knapsacks place every task once: u is optimal
        u = u + theta * (target + 1.0 - value) / norm * sub
        theta *= 0.9
    return best_u, best - 1e-9 * max(1.0, abs(best))

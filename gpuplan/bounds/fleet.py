r"""A lower bound for the fleet program from an aggregated LP, valid at any size.

Identical tasks form task classes a (count :math:`N_a`) and identical nodes form node classes b
(count :math:`M_b`, with :math:`G_{bc}` usable GPUs of GPU class c each). The relaxation counts
tasks per node class, :math:`n_{ab}`, and the GPUs they use per class, :math:`q_{abc}`:

.. math::

    \min \sum c_{ac} q_{abc} + \sum_a \tau_a n_{ab} + \lambda_{\mathrm{gpus}} \sum (\ell_{ac}/A) q_{abc}
    + \sum_a p_a y_a \quad\text{s.t.}\quad \sum_b n_{ab} + y_a = N_a,\;
    \sum_c q_{abc} = k_a n_{ab},

    \sum_a \ell_{ac} q_{abc} \le A\, G_{bc} M_b,\; \sum_a m_a q_{abc} \le \mathrm{Mem}_c G_{bc} M_b,\;
    \sum_a \mathrm{cpu}_a n_{ab} \le C_b M_b,\; \sum_a \mathrm{ram}_a n_{ab} \le R_b M_b.

It drops what only raises the objective (spread groups, dataset copies, migration, nodes used,
balance) and sums capacities over identical nodes, so every plan is a feasible point; a used GPU
counts at least the loads it carries over its capacity (:math:`\ell/A`: the shares side by side,
GPU time over H with a horizon, where shares on one GPU may add up past 1). The
reported bound is not GLOP's floating-point optimum but the Lagrangian value :math:`L(\mu)`
recomputed exactly from the LP's capacity duals :math:`\mu \ge 0` (the per-task-class minimum of
dropping versus the cheapest priced placement, minus priced capacity), which is a valid bound for
any :math:`\mu` and therefore immune to solver tolerances. Idea as in Lagrangian relaxation for the
GAP (Fisher, Jaikumar and Van Wassenhove, 1986).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gpuplan.interrupt import past
from gpuplan.program.fleet import FleetProgram


@dataclass(frozen=True)
class Aggregate:
    """Task and node classes of a fleet program."""

    task_rep: np.ndarray  # int64 [A]: a representative task
    task_count: np.ndarray  # int64 [A]
    node_rep: np.ndarray  # int64 [B]
    node_count: np.ndarray  # int64 [B]
    gpus: np.ndarray  # int64 [B, C]: usable GPUs of class c on one node of class b
    task_class: np.ndarray  # int64 [T]
    node_class: np.ndarray  # int64 [N]


def aggregate(p: FleetProgram) -> Aggregate:
    """Group identical tasks and identical nodes (migration, spread and datasets ignored)."""
    c_n = p.eligible_c.shape[1]
    per_node = np.zeros((p.n_nodes, c_n), dtype=np.int64)
    np.add.at(per_node, (p.gpu_node[p.gpu_ok], p.gpu_class[p.gpu_ok]), 1)
    node_key = np.column_stack([per_node, p.node_cpu, p.node_ram])
    _, node_rep, node_inv = np.unique(node_key, axis=0, return_index=True, return_inverse=True)
    node_count = np.bincount(node_inv.ravel(), minlength=node_rep.size)
    task_key = np.column_stack(
        [
            p.eligible_c,
            p.cost_c,
            p.load_c,
            p.gang,
            p.share,
            p.gpu_mem,
            p.cpu,
            p.ram,
            p.same_type,
            p.optional,
            p.penalty,
            p.transfer_each,
        ]
    ).astype(np.float64)
    _, task_rep, task_inv = np.unique(task_key, axis=0, return_index=True, return_inverse=True)
    task_count = np.bincount(task_inv.ravel(), minlength=task_rep.size)
    return Aggregate(
        task_rep, task_count, node_rep, node_count, per_node[node_rep], task_inv.ravel(), node_inv.ravel()
    )


def _placeable(p: FleetProgram, ag: Aggregate, t: int) -> np.ndarray:
    """bool [B, C]: GPU classes of node class b task t may use, given its gang fits on such a node."""
    ok = (ag.gpus > 0) & p.eligible_c[t][None, :]
    k = int(p.gang[t])
    if k > 1:
        if p.same_type[t]:
            n_types = len(p.type_names)
            cls_type = np.zeros(ok.shape[1], dtype=np.int64)
            cls_type[p.gpu_class] = p.gpu_type
            per_type = np.zeros((ok.shape[0], n_types))
            for c in range(ok.shape[1]):
                per_type[:, cls_type[c]] += np.where(ok[:, c], ag.gpus[:, c], 0)
            ok &= per_type[:, cls_type] >= k
        else:
            ok &= (np.where(ok, ag.gpus, 0).sum(axis=1) >= k)[:, None]
    cpu_ok = p.cpu[t] <= p.node_cpu[ag.node_rep] + 1e-9
    ram_ok = p.ram[t] <= p.node_ram[ag.node_rep] + 1e-9
    return ok & (cpu_ok & ram_ok)[:, None]


def lagrangian_value(
    p: FleetProgram,
    ag: Aggregate,
    mu_load: np.ndarray,
    mu_mem: np.ndarray,
    mu_cpu: np.ndarray,
    mu_ram: np.ndarray,
) -> float:
    """L(mu): a valid lower bound for any mu >= 0 ([B, C], [B, C], [B], [B]); -inf never, +inf when
    a required task fits nowhere."""
    total = 0.0
    finite_cpu = np.where(np.isfinite(p.node_cpu[ag.node_rep]), p.node_cpu[ag.node_rep], 0.0)
    finite_ram = np.where(np.isfinite(p.node_ram[ag.node_rep]), p.node_ram[ag.node_rep], 0.0)
    for a, t in enumerate(ag.task_rep):
        ok = _placeable(p, ag, t)
        per_gpu = (
            p.cost_c[t][None, :]
            + mu_load * p.load_c[t][None, :]
            + mu_mem * p.gpu_mem[t]
            + p.w_gpus * p.load_c[t][None, :] / p.capacity
        )
        per_gpu = np.where(ok, per_gpu, np.inf)
        per_node = (
            int(p.gang[t]) * per_gpu.min(axis=1, initial=np.inf)
            + mu_cpu * p.cpu[t]
            + mu_ram * p.ram[t]
            + p.transfer_each[t]
        )
        place = float(per_node.min(initial=np.inf))
        drop = float(p.penalty[t]) if p.optional[t] else np.inf
        value = min(place, drop)
        if not np.isfinite(value):
            return np.inf
        total += ag.task_count[a] * value
    cap = p.capacity * ag.gpus * ag.node_count[:, None]
    total -= float((mu_load * cap).sum())
    if not p.horizon:
        mem_cap = np.zeros(ag.gpus.shape[1])
        mem_cap[p.gpu_class] = p.mem_cap
        total -= float((mu_mem * mem_cap[None, :] * ag.gpus * ag.node_count[:, None]).sum())
    total -= float((mu_cpu * finite_cpu * ag.node_count).sum())
    total -= float((mu_ram * finite_ram * ag.node_count).sum())
    return total


@dataclass
class AggregateLP:
    """The bound and the LP's solve statistics."""

    bound: float
    stats: dict[str, float | str]


#: Task classes the aggregated LP aims at: past this, tasks are rounded into fewer (`rounded_down`).
LP_CLASSES = 20_000
#: Relative grids tried in turn, finest first: a cost, load or penalty v becomes the largest
#: (1 + r)^k <= v (0 stays 0); the last one (inf) sets costs to 0.
ROUND_STEPS = (0.01, 0.05, 0.25, 1.0, np.inf)


def _down(v: np.ndarray, r: float) -> np.ndarray:
    """v rounded down to the grid (1 + r)^k (k integer), 0 and below kept; r = inf: 0."""
    if r == np.inf:
        return np.minimum(v, 0.0)
    pos = v > 0
    out = np.array(v, dtype=np.float64)
    k = np.floor(np.log(np.where(pos, v, 1.0)) / np.log1p(r) + 1e-12)
    out[pos] = np.minimum(v[pos], np.exp(k[pos] * np.log1p(r)))
    return out


def rounded_down(p: FleetProgram, classes: int = LP_CLASSES) -> tuple[FleetProgram, Aggregate, str]:
    r"""A relaxation of `p` with at most about `classes` task classes, its classes, and how it was
    rounded ('' when `p` is returned as it is).

    Costs (and data transfer charges) are rounded down to a relative grid, the finest of
    `ROUND_STEPS` that brings the classes under `classes` (the last sets them to 0); if that is not
    enough, loads, GPU memory, CPU, host memory and drop penalties are rounded down too, on grids of
    1%, 5% and 25%. Capacities stay. Every plan of `p` is a plan of the relaxation (smaller demands
    fit where larger ones did) at no higher objective, so a lower bound of the relaxation bounds `p`:
    tasks that differed only in, say, their duration fall into one class."""
    ag = aggregate(p)
    if ag.task_rep.size <= classes:
        return p, ag, ""
    q, how = p, ""
    for r in ROUND_STEPS:
        q = p.replace(cost_c=_down(p.cost_c, r), transfer_each=_down(p.transfer_each, r))
        ag = aggregate(q)
        how = f"costs down to a {r:g} relative grid" if np.isfinite(r) else "costs to 0"
        if ag.task_rep.size <= classes:
            return q, ag, how
    base = q
    for d in ROUND_STEPS[:3]:
        q = base.replace(
            load_c=_down(p.load_c, d),
            gpu_mem=_down(p.gpu_mem, d),
            cpu=_down(p.cpu, d),
            ram=_down(p.ram, d),
            penalty=_down(p.penalty, d),
        )
        ag = aggregate(q)
        how = f"costs to 0, demands and penalties down to a {d:g} relative grid"
        if ag.task_rep.size <= classes:
            break
    return q, ag, how


def fleet_lower_bound(p: FleetProgram, deadline: float | None = None) -> AggregateLP:
    """The aggregated LP's Lagrangian bound (the trivial L(0) when the LP fails); +inf when a
    required task fits nowhere (infeasible). Past `LP_CLASSES` task classes it is the bound of the
    relaxation `rounded_down`, which is a bound of `p` too."""
    from ortools.linear_solver import pywraplp

    started = time.monotonic()
    p, ag, rounding = rounded_down(p)
    b_n, c_n = ag.gpus.shape
    zeros_bc, zeros_b = np.zeros((b_n, c_n)), np.zeros(b_n)
    best = lagrangian_value(p, ag, zeros_bc, zeros_bc, zeros_b, zeros_b)
    stats: dict[str, float | str] = {"lp_task_classes": int(ag.task_rep.size), "lp_node_classes": int(b_n)}
    if rounding:
        stats["lp_rounding"] = rounding
    if not np.isfinite(best):
        return AggregateLP(best, stats)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        return AggregateLP(best, stats)
    if deadline is not None:
        solver.SetTimeLimit(max(1, int(1000 * (deadline - time.monotonic()))))
    inf = solver.infinity()
    load_rows: dict[tuple[int, int], pywraplp.Constraint] = {}
    mem_rows: dict[tuple[int, int], pywraplp.Constraint] = {}
    cpu_rows: dict[int, pywraplp.Constraint] = {}
    ram_rows: dict[int, pywraplp.Constraint] = {}
    mem_cap = np.zeros(c_n)
    mem_cap[p.gpu_class] = p.mem_cap
    for b in range(b_n):
        m_b = float(ag.node_count[b])
        for c in range(c_n):
            if ag.gpus[b, c]:
                load_rows[b, c] = solver.Constraint(-inf, p.capacity * ag.gpus[b, c] * m_b)
                if not p.horizon:
                    mem_rows[b, c] = solver.Constraint(-inf, mem_cap[c] * ag.gpus[b, c] * m_b)
        n = ag.node_rep[b]
        if np.isfinite(p.node_cpu[n]):
            cpu_rows[b] = solver.Constraint(-inf, float(p.node_cpu[n]) * m_b)
        if np.isfinite(p.node_ram[n]):
            ram_rows[b] = solver.Constraint(-inf, float(p.node_ram[n]) * m_b)
    objective = solver.Objective()
    for a, t in enumerate(ag.task_rep):
        ok = _placeable(p, ag, t)
        cover = solver.Constraint(float(ag.task_count[a]), float(ag.task_count[a]))
        if p.optional[t]:
            y = solver.NumVar(0, inf, "")
            cover.SetCoefficient(y, 1)
            objective.SetCoefficient(y, float(p.penalty[t]))
        k = float(p.gang[t])
        for b in np.flatnonzero(ok.any(axis=1)):
            n_var = solver.NumVar(0, inf, "")
            cover.SetCoefficient(n_var, 1)
            objective.SetCoefficient(n_var, float(p.transfer_each[t]))
            link = solver.Constraint(0, 0)
            link.SetCoefficient(n_var, -k)
            if b in cpu_rows and p.cpu[t]:
                cpu_rows[b].SetCoefficient(n_var, float(p.cpu[t]))
            if b in ram_rows and p.ram[t]:
                ram_rows[b].SetCoefficient(n_var, float(p.ram[t]))
            for c in np.flatnonzero(ok[b]):
                q = solver.NumVar(0, inf, "")
                link.SetCoefficient(q, 1)
                objective.SetCoefficient(q, float(p.cost_c[t, c] + p.w_gpus * p.load_c[t, c] / p.capacity))
                load_rows[b, c].SetCoefficient(q, float(p.load_c[t, c]))
                if (b, c) in mem_rows and p.gpu_mem[t]:
                    mem_rows[b, c].SetCoefficient(q, float(p.gpu_mem[t]))
    objective.SetMinimization()
    status = solver.Solve()
    stats["lp_s"] = round(time.monotonic() - started, 4)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        stats["lp_status"] = int(status)
        return AggregateLP(best, stats)
    stats["lp_value"] = float(objective.Value())
    mu_load, mu_mem = np.zeros((b_n, c_n)), np.zeros((b_n, c_n))
    mu_cpu, mu_ram = np.zeros(b_n), np.zeros(b_n)
    for (b, c), row in load_rows.items():
        mu_load[b, c] = max(0.0, -row.dual_value())
    for (b, c), row in mem_rows.items():
        mu_mem[b, c] = max(0.0, -row.dual_value())
    for b, row in cpu_rows.items():
        mu_cpu[b] = max(0.0, -row.dual_value())
    for b, row in ram_rows.items():
        mu_ram[b] = max(0.0, -row.dual_value())
    value = lagrangian_value(p, ag, mu_load, mu_mem, mu_cpu, mu_ram)
    best = max(best, value)
    return AggregateLP(best, stats)


@dataclass
class Packing:
    """The packing bound and the configuration LP's use of each item kind (for guiding the greedy)."""

    bound: float
    item_of_task: np.ndarray  # int64 [T], -1 for tasks that fit nowhere
    used: np.ndarray | None  # float64 [items]: GPUs' worth of items the LP places (gang items count k)


def _knapsack(gain: np.ndarray, size: np.ndarray, count: np.ndarray, grid: int) -> tuple[float, np.ndarray]:
    """max sum a_i gain_i, sum a_i size_i <= grid, 0 <= a_i <= count_i integer (bounded knapsack,
    exact on the integer grid); items with gain <= 0 are never taken."""
    dp = np.zeros(grid + 1)
    choice: list[tuple[int, int, np.ndarray]] = []
    for i in np.flatnonzero(gain > 0):
        if size[i] == 0:
            dp = dp + gain[i] * count[i]
            choice.append((int(i), 0, np.full(grid + 1, count[i])))
            continue
        limit = min(int(count[i]), grid // int(size[i]))
        take = np.zeros(grid + 1, dtype=np.int64)
        new = dp.copy()
        for a in range(1, limit + 1):
            shift = a * int(size[i])
            cand = np.full(grid + 1, -np.inf)
            cand[shift:] = dp[: grid + 1 - shift] + a * gain[i]
            better = cand > new
            new = np.where(better, cand, new)
            take = np.where(better, a, take)
        dp = new
        choice.append((int(i), int(size[i]), take))
    pattern = np.zeros(gain.size, dtype=np.int64)
    cap = grid
    for i, sz, take in reversed(choice):
        a = int(take[cap])
        pattern[i] = a
        cap -= a * sz
    return float(dp[grid]), pattern


def packing_bound(
    p: FleetProgram, grid: int = 1000, max_rounds: int = 300, deadline: float | None = None
) -> Packing | None:
    r"""Lower bound from packing alone: every drop penalty not saved by the best packing of the
    tasks' GPU loads into the usable GPUs of each class, each GPU a bin of size 1 (a Gilmore-Gomory
    configuration LP with one bin kind per GPU class).

    Relaxation: nodes, CPU, memory and costs (all >= 0) are ignored, a gang becomes k separate
    whole-GPU items worth p_t / k each, and each load is rounded *down* to a 1/grid of a GPU's
    capacity. Valid for any dual prices pi >= 0:
    :math:`\sum_i \pi_i n_i + \sum_c B_c \max_{\text{pattern on } c} \sum_i a_i (w_i - \pi_i)`,
    each maximum computed exactly by a bounded knapsack over the items class c may hold; column
    generation only improves pi. None when required tasks exist (dropping them is not an option the
    bound can price) or nothing is optional.
    """
    from ortools.linear_solver import pywraplp

    if not p.optional.any() or (~p.optional & p.eligible_c.any(axis=1)).any():
        return None
    c_n = p.eligible_c.shape[1]
    bins = np.bincount(p.gpu_class[p.gpu_ok], minlength=c_n)
    classes = np.flatnonzero(bins > 0)
    elig = p.eligible_c[:, classes]
    has = elig.any(axis=1)
    size = np.floor(np.where(elig, p.load_c[:, classes], 0.0) / p.capacity * grid + 1e-9).astype(np.int64)
    value = p.penalty / p.gang
    keys = np.column_stack([value, elig, np.where(elig, size, -1)])[has]
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    item_of_task = np.full(p.n_tasks, -1, dtype=np.int64)
    item_of_task[has] = inv.ravel()
    n_i = np.bincount(inv.ravel(), weights=p.gang[has]).astype(np.int64)
    w_i = uniq[:, 0]
    k_n = classes.size
    e_ik = uniq[:, 1 : 1 + k_n] > 0.5
    s_ik = uniq[:, 1 + k_n :].astype(np.int64)
    total_penalty = float(p.penalty.sum())

    def patterns(price: np.ndarray) -> list[tuple[float, np.ndarray]]:
        gain = w_i - price
        out = []
        for k in range(k_n):
            g = np.where(e_ik[:, k], gain, 0.0)
            out.append(_knapsack(g, np.maximum(s_ik[:, k], 0), n_i, grid))
        return out

    def upper(price: np.ndarray, pats: list[tuple[float, np.ndarray]]) -> float:
        return float(price @ n_i) + sum(float(bins[classes[k]]) * pats[k][0] for k in range(k_n))

    zero = np.zeros(w_i.size)
    best = upper(zero, patterns(zero))
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        return Packing(total_penalty - best, item_of_task, None)
    inf = solver.infinity()
    item_rows = [solver.Constraint(-inf, float(n)) for n in n_i]
    bin_rows = [solver.Constraint(-inf, float(bins[c])) for c in classes]
    obj = solver.Objective()
    obj.SetMaximization()
    columns: list[tuple[pywraplp.Variable, np.ndarray]] = []

    def add(k: int, pattern: np.ndarray) -> None:
        var = solver.NumVar(0, inf, "")
        for i in np.flatnonzero(pattern):
            item_rows[i].SetCoefficient(var, int(pattern[i]))
        bin_rows[k].SetCoefficient(var, 1)
        obj.SetCoefficient(var, float(pattern @ w_i))
        columns.append((var, pattern.astype(np.float64)))

    for i in range(w_i.size):  # single-kind patterns, as many as fit
        for k in np.flatnonzero(e_ik[i]):
            sz = int(s_ik[i, k])
            a = int(n_i[i]) if sz == 0 else min(int(n_i[i]), grid // sz)
            pattern = np.zeros(w_i.size, dtype=np.int64)
            pattern[i] = a
            add(int(k), pattern)
    used: np.ndarray | None = None
    for _ in range(max_rounds):
        if deadline is not None and past(deadline):
            break
        if solver.Solve() != pywraplp.Solver.OPTIMAL:
            break
        used = sum((var.solution_value() * col for var, col in columns), np.zeros(w_i.size))
        price = np.array([max(0.0, r.dual_value()) for r in item_rows])
        sigma = np.array([max(0.0, r.dual_value()) for r in bin_rows])
        pats = patterns(price)
        best = min(best, upper(price, pats))
        improving = [k for k in range(k_n) if pats[k][0] > sigma[k] * (1 + 1e-9) + 1e-9]
        if not improving:
            break
        for k in improving:
            add(k, pats[k][1])
    return Packing(total_penalty - best, item_of_task, used)


__all__ = ["AggregateLP", "Packing", "aggregate", "fleet_lower_bound", "lagrangian_value", "packing_bound"]

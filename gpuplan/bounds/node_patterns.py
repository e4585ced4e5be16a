r"""A bound from node patterns: a Gilmore-Gomory configuration LP whose columns are whole nodes.

Tasks of equal demands form *shapes* i (count :math:`N_i`, drop penalty :math:`w_i`); costs are
left out. Nodes of equal make-up form node classes b (count :math:`M_b`): :math:`G_b` usable GPUs of
one GPU class, capacity A and memory :math:`\mathrm{Mem}_b` each, CPU :math:`C_b`, host memory
:math:`R_b`. A *pattern* of class b is what one such node can hold, :math:`x \in \mathbb{Z}_{\ge 0}^I`:

.. math::

    \sum_j u_j \le G_b,\qquad \sum_{i \in \kappa} k_i x_i \le \sum_j n_{j\kappa} u_j \;\; \forall \kappa,
    \qquad \sum_i c_i x_i \le C_b,\qquad \sum_i r_i x_i \le R_b,

where a *kind* :math:`\kappa` is a per-GPU demand (load :math:`\ell`, GPU memory m), a *GPU
configuration* j is a maximal multiset of kinds one GPU holds (:math:`\sum \ell \le A`,
:math:`\sum m \le \mathrm{Mem}_b`, :math:`n_{j\kappa}` of kind :math:`\kappa`), and :math:`u_j`
counts the node's GPUs set up as j. A gang of :math:`k_i` GPUs takes :math:`k_i` slots of its kind
(on distinct GPUs in a plan; the pattern does not ask, a relaxation, exact for whole-GPU gangs).

For any prices :math:`\pi \ge 0`, every plan places at most

.. math::

    U(\pi) = \sum_i \pi_i N_i + \sum_b M_b \max\Big(0, \max_{x \in P_b} \sum_i (w_i - \pi_i) x_i\Big)

of penalty (each node holds a pattern, and no shape is placed more than :math:`N_i` times), so
:math:`\sum_t p_t - U(\pi)` bounds the objective from below when every other term of it is
non-negative. Each inner maximum is a small integer program (`_Pricing`, CP-SAT); only CP-SAT's
proven upper bound on it enters :math:`U`, with gains rounded up and CPU and host memory demands
rounded down, so the value stays an upper bound whatever the solver's tolerance or time limit.
The prices come from the restricted master LP over the patterns found so far (column generation,
GLOP): :math:`\max \sum_{b,x} \lambda_{bx} w \cdot x` with :math:`\sum_x \lambda_{bx} \le M_b`,
:math:`\sum_{b,x} x_i \lambda_{bx} \le N_i`. At its optimum :math:`U` is the LP value; it leaves
costs out (worth less than one dropped task in all when 'placed' is lexicographically first), but
on the penalties it is at least as strong as the pooled LP of `gpuplan.bounds.fleet`, up to the
rounding of CPU and memory (no node lends CPU or memory to another, no GPU its memory to another
GPU). Its columns, rounded to whole nodes, are also a plan
(`gpuplan.heuristics.pattern_plan.pattern_plan`).

**Priorities** (`lexicographic`). With drop penalties :math:`p_t = B_j + e_t` spread over many
orders of magnitude, one LP over all tiers does not converge in floating point, so the tiers are
taken one at a time, highest first. Stage j maximizes the number :math:`P_j` of placed tasks of tier
j (the last tier: its penalty) subject to :math:`P_i \ge Z_i` for every tier i above, as elastic
rows of the master. For multipliers :math:`\mu \ge 0` of those rows, every plan meeting them has

.. math::

    P_j \le P_j + \sum_i \mu_i (P_i - Z_i) \le U(\pi; g) - \sum_i \mu_i Z_i,

U with the gains :math:`g` = 1 on tier j and :math:`\mu_i` on tier i, so
:math:`Z_j = \lfloor U - \mu \cdot Z \rfloor` (at most the tier's size) holds for every such plan,
whatever the LP's state. Any plan either meets every :math:`Z_i`, or meets those above some tier j
and places at most :math:`Z_j - 1` of tier j; with :math:`V_j(z)` the sum of the z largest penalties
of tier j and :math:`V` the last stage's bound, the penalty it places is at most

.. math::

    \max\Big(\sum_{i} V_i(Z_i) + V,\ \max_j \Big[\sum_{i<j} V_i(Z_i) + V_j(Z_j - 1) +
    \sum_{i>j} \sum_{t \in i} p_t\Big]\Big),

valid for any penalties; with :math:`B_j` above everything below it the first term is the largest.
Each stage's gains stay near 1, so the pricing's grid and GLOP see no spread of magnitudes.

**Tier by tier** (`NodePatterns.tier_bound`). A solve that weighs every tier alike (penalties equal
within each tier) and orders the tiers by stages wants a bound on the price of the tier-optimal
plans, not of every plan. Given a plan placing :math:`Q_j` tasks of tier j, every plan at least as
good in the tier order places :math:`Z_i` of each tier i above the first tier f with
:math:`Q_f < Z_f` (it cannot place more, by the stages, nor fewer, being no worse than the plan)
and at least :math:`Q_f` of tier f. One more stage, maximizing the penalty of tiers f and below
under the rows :math:`P_i \ge Z_i` (i < f) and :math:`P_f \ge Q_f`, bounds what it places below f;
:math:`\sum_{i<f} V_i(Z_i)` bounds the rest.

Applies when every task with a home is optional and takes a GPU, shares sit side by side (no
horizon, no further resources), every cost term is non-negative, and each node's usable GPUs are
of one class; otherwise `node_pattern_bound` returns None.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from gpuplan.interrupt import past, solve_cpsat
from gpuplan.program.fleet import FleetProgram

#: Most GPU configurations per node class; past it the bound is not attempted: each pricing model
#: holds one variable per configuration and runs once per class and round, and with thousands of them
#: (shares of many sizes, as in real traces) column generation does not finish in the bounds' share
#: of the time, while the other bounds and starts lose that time.
MAX_CONFIGS = 500
#: Most columns one pricing adds to the master in the lexicographic stages (the best solutions
#: CP-SAT met on its way: fewer rounds for several LPs on one budget); one otherwise.
MAX_COLUMNS = 4
#: Integer grid of the pricing's objective (per largest penalty) and of CPU and host memory.
GAIN_SCALE = 1_000_000
NODE_SCALE = 1_000
_TOL = 1e-9
#: How far below its need a tier row's bound is set in the master LP (tasks).
_ROW_EASE = 1e-6


def applicable(p: FleetProgram) -> bool:
    """The conditions of the module docstring."""
    if not p.shares or p.horizon or p.extra_load_c.size or not p.optional.any():
        return False
    home = p.eligible_c.any(axis=1)
    if (~p.optional & home).any() or (p.cpu_only & home).any():
        return False
    terms = (p.cost_c, p.transfer_each, p.move_cost, p.dataset_charge, p.penalty)
    if any((t < 0).any() for t in terms) or min(p.w_gpus, p.w_nodes, p.w_balance) < 0:
        return False
    usable = p.gpu_ok & ~p.host
    first = np.full(p.n_nodes, -1)
    first[p.gpu_node[usable]] = p.gpu_class[usable]
    return bool(np.all(p.gpu_class[usable] == first[p.gpu_node[usable]]))


def _configs(kinds: np.ndarray, cap: float, mem: float) -> np.ndarray | None:
    """int [J, K]: the maximal multisets of kinds (rows: load, memory) one GPU holds; None past
    MAX_CONFIGS or when a kind takes nothing (no multiset is maximal)."""
    k_n = kinds.shape[0]
    if k_n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    if np.any((kinds[:, 0] <= _TOL) & (kinds[:, 1] <= _TOL)):
        return None
    lim_l, lim_m = cap * (1 + _TOL) + _TOL, mem * (1 + _TOL) + _TOL
    out: list[list[int]] = []
    counts = [0] * k_n

    def fits(load: float, m: float, k: int) -> bool:
        return load + kinds[k, 0] <= lim_l and m + kinds[k, 1] <= lim_m

    def walk(k: int, load: float, m: float) -> bool:
        if len(out) > MAX_CONFIGS:
            return False
        if k == k_n:
            if not any(fits(load, m, j) for j in range(k_n)):
                out.append(list(counts))
            return True
        n = 0
        while fits(load + n * kinds[k, 0], m + n * kinds[k, 1], k):
            n += 1
        for a in range(n, -1, -1):
            counts[k] = a
            if not walk(k + 1, load + a * kinds[k, 0], m + a * kinds[k, 1]):
                return False
        counts[k] = 0
        return True

    if not walk(0, 0.0, 0.0):
        return None
    return np.array(out, dtype=np.int64).reshape(-1, k_n)


class _Pricing:
    """The pricing problem of one node class (module docstring): one CP-SAT model over the shapes
    the class can hold, built once; each call sets the variables' upper bounds and the objective."""

    def __init__(
        self,
        sh: _Shapes,
        items: np.ndarray,
        kind: np.ndarray,
        configs: np.ndarray,
        gpus: int,
        cpu: float,
        ram: float,
    ) -> None:
        from ortools.sat.python import cp_model

        self.items = items  # int64: shapes this class can hold
        self.kind = kind  # int64 per item: its per-GPU demand (load, GPU memory)
        self.configs = configs  # int64 [J, K]: the maximal GPU configurations
        gang = sh.gang[items]
        slots = configs.max(axis=0) * gpus if configs.size else np.zeros(0, dtype=np.int64)
        self.cap = slots[kind] // gang if items.size else np.zeros(0, dtype=np.int64)
        m = cp_model.CpModel()
        self.xs = [m.new_int_var(0, int(u), "") for u in self.cap]
        self.us = us = [m.new_int_var(0, gpus, "") for _ in range(configs.shape[0])]
        m.add(sum(us) <= gpus)
        for k in np.unique(kind):
            sel = np.flatnonzero(kind == k)
            m.add(
                cp_model.LinearExpr.weighted_sum([self.xs[s] for s in sel], [int(g) for g in gang[sel]])
                <= cp_model.LinearExpr.weighted_sum(
                    [us[j] for j in np.flatnonzero(configs[:, k])],
                    [int(c) for c in configs[configs[:, k] > 0, k]],
                )
            )
        for need, limit in ((sh.cpu[items], cpu), (sh.ram[items], ram)):
            if np.isfinite(limit) and need.any():
                a = np.floor(need * NODE_SCALE + 1e-9).astype(np.int64)
                m.add(
                    cp_model.LinearExpr.weighted_sum(self.xs, [int(v) for v in a])
                    <= math.ceil(limit * NODE_SCALE)
                )
        self.model = m

    def solve(
        self, gain: np.ndarray, count: np.ndarray, limit_s: float, unit: float
    ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
        """(an upper bound on max gain . x over the patterns with x <= `count`; the patterns found on
        the way, (x [I], GPU configurations u [J]), the best last); gains are put on a grid of
        `unit` / GAIN_SCALE. Every improving solution CP-SAT meets is a column for the master."""
        from ortools.sat.python import cp_model

        g = gain[self.items]
        ub = np.where(g > 0, np.minimum(np.floor(count[self.items] + 1e-9).astype(np.int64), self.cap), 0)
        ub = np.maximum(ub, 0)
        if not ub.any():
            return 0.0, []
        scale = GAIN_SCALE / unit
        v = np.where(ub > 0, np.ceil(g * scale - 1e-9), 0).astype(np.int64)
        proto = self.model.proto
        for var, u in zip(self.xs, ub, strict=True):
            proto.variables[var.index].domain[1] = int(u)
        self.model.maximize(cp_model.LinearExpr.weighted_sum(self.xs, [int(c) for c in v]))
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, limit_s)
        solver.parameters.num_workers = 1
        found: list[tuple[np.ndarray, np.ndarray]] = []
        xs, us, items, size = self.xs, self.us, self.items, gain.size

        class _Keep(cp_model.CpSolverSolutionCallback):  # type: ignore[misc]
            def on_solution_callback(self) -> None:
                x = np.zeros(size, dtype=np.int64)
                x[items] = [self.value(var) for var in xs]
                found.append((x, np.array([self.value(var) for var in us], dtype=np.int64)))

        status = solve_cpsat(solver, self.model, _Keep())
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return float((v * ub).sum()) / scale, []
        return float(solver.best_objective_bound) / scale, found


@dataclass
class _Shapes:
    """Tasks of equal demands (costs left out)."""

    rep: np.ndarray
    count: np.ndarray
    value: np.ndarray
    gang: np.ndarray
    cpu: np.ndarray
    ram: np.ndarray
    of_task: np.ndarray


def _shapes(p: FleetProgram) -> _Shapes:
    home = np.flatnonzero(p.eligible_c.any(axis=1))
    key = np.column_stack(
        [
            p.eligible_c,
            np.where(p.eligible_c, p.load_c, 0.0),
            p.gang,
            p.gpu_mem,
            p.cpu,
            p.ram,
            p.penalty,
            p.priority,
        ]
    ).astype(np.float64)[home]
    _, rep, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    of_task = np.full(p.n_tasks, -1, dtype=np.int64)
    of_task[home] = inv
    rep = home[rep]
    return _Shapes(
        rep,
        np.bincount(inv, minlength=rep.size).astype(np.int64),
        p.penalty[rep].astype(np.float64),
        p.gang[rep].astype(np.int64),
        p.cpu[rep].astype(np.float64),
        p.ram[rep].astype(np.float64),
        of_task,
    )


def _node_classes(
    p: FleetProgram,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(node class per node, -1 without usable GPUs; per class a representative node, its GPU
    class, usable GPUs and the largest GPU memory among them)."""
    usable = p.gpu_ok & ~p.host
    gpus = np.bincount(p.gpu_node[usable], minlength=p.n_nodes)
    cls = np.full(p.n_nodes, -1)
    cls[p.gpu_node[usable]] = p.gpu_class[usable]
    mem = np.zeros(p.n_nodes)
    np.maximum.at(mem, p.gpu_node[usable], p.mem_cap[usable])
    key = np.column_stack([gpus, cls, p.node_cpu, p.node_ram, mem])
    has = np.flatnonzero(gpus > 0)
    node_class = np.full(p.n_nodes, -1, dtype=np.int64)
    _, rep, inv = np.unique(key[has], axis=0, return_index=True, return_inverse=True)
    node_class[has] = inv.ravel()
    rep = has[rep]
    return node_class, rep, cls[rep], gpus[rep], mem[rep]


def _pricings(
    p: FleetProgram, sh: _Shapes, reps: np.ndarray, gcls: np.ndarray, gpus: np.ndarray, mems: np.ndarray
) -> list[_Pricing] | None:
    """One pricing problem per node class; None when a class has too many GPU configurations."""
    out = []
    for n, c, g, mem_cap in zip(reps, gcls, gpus, mems, strict=True):
        t = sh.rep
        ok = (
            p.eligible_c[t, c]
            & (sh.gang <= g)
            & (sh.cpu <= p.node_cpu[n] + _TOL)
            & (sh.ram <= p.node_ram[n] + _TOL)
        )
        items = np.flatnonzero(ok)
        pairs = np.column_stack([p.load_c[t[items], c], p.gpu_mem[t[items]]])
        kinds, kind = np.unique(pairs, axis=0, return_inverse=True)
        configs = _configs(kinds, float(p.capacity), float(mem_cap))
        if configs is None:
            return None
        out.append(
            _Pricing(
                sh,
                items,
                kind.ravel().astype(np.int64),
                configs,
                int(g),
                float(p.node_cpu[n]),
                float(p.node_ram[n]),
            )
        )
    return out


class _Master:
    """The restricted master LP over the columns found so far (GLOP, values in units of the
    largest gain), with the pricing problems that add columns to it. `gain` [I] is the objective
    per shape (by default the drop penalties); each tier row asks for at least a number of placed
    tasks of a set of shapes, elastic (a slack at a high price keeps the LP feasible)."""

    def __init__(self, sh: _Shapes, prices: list[_Pricing], m_b: np.ndarray) -> None:
        from ortools.linear_solver import pywraplp

        self.sh, self.prices, self.m_b = sh, prices, m_b
        self.gain = sh.value.astype(np.float64)
        self.top = float(np.max(self.gain)) if self.gain.size else 1.0
        solver = pywraplp.Solver.CreateSolver("GLOP")
        if solver is None:
            raise RuntimeError("OR-Tools has no GLOP")
        self.solver = solver
        inf = solver.infinity()
        self.rows = [solver.Constraint(-inf, float(n)) for n in sh.count]
        self.node_rows = [solver.Constraint(-inf, float(m)) for m in m_b]
        self.obj = solver.Objective()
        self.obj.SetMaximization()
        self.cols: list[tuple[int, np.ndarray, np.ndarray]] = []  # (b, x [I], u [J of b])
        self.vars: list[object] = []
        self.tier_rows: list[tuple[object, np.ndarray]] = []  # (constraint, shape mask)
        self.per_pricing = 1  # columns one pricing may add (MAX_COLUMNS in the lexicographic stages)

    def add(self, b: int, x: np.ndarray, u: np.ndarray) -> None:
        var = self.solver.NumVar(0, self.solver.infinity(), "")
        for i in np.flatnonzero(x):
            self.rows[i].SetCoefficient(var, float(x[i]))
        self.node_rows[b].SetCoefficient(var, 1.0)
        for row, mask in self.tier_rows:
            row.SetCoefficient(var, float(x[mask].sum()))  # type: ignore[attr-defined]
        self.obj.SetCoefficient(var, float(self.gain @ x) / self.top)
        self.cols.append((b, x, u))
        self.vars.append(var)

    def set_gain(self, gain: np.ndarray) -> None:
        """Make `gain` [I] (value units) the objective."""
        self.gain = gain.astype(np.float64)
        self.top = float(np.max(self.gain)) if self.gain.size and np.max(self.gain) > 0 else 1.0
        for var, (_, x, _) in zip(self.vars, self.cols, strict=True):
            self.obj.SetCoefficient(var, float(self.gain @ x) / self.top)

    def add_row(self, mask: np.ndarray, slack_price: float) -> None:
        """A tier row over the shapes of `mask`; its slack costs `slack_price` (units of the largest
        gain) per task short."""
        row = self.solver.Constraint(0.0, self.solver.infinity())
        for var, (_, x, _) in zip(self.vars, self.cols, strict=True):
            row.SetCoefficient(var, float(x[mask].sum()))
        slack = self.solver.NumVar(0, self.solver.infinity(), "")
        row.SetCoefficient(slack, 1.0)
        self.obj.SetCoefficient(slack, -float(slack_price))
        self.tier_rows.append((row, mask))

    def solve(
        self, tasks: np.ndarray, nodes: np.ndarray, need: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """(item prices, node-class prices, tier-row prices, value) of the LP with `tasks` [I] and
        `nodes` [B] free and tier row r asking for `need[r]` tasks; None when GLOP fails."""
        from ortools.linear_solver import pywraplp

        for i, r in enumerate(self.rows):
            r.SetUb(float(max(0.0, tasks[i])))
        for b, r in enumerate(self.node_rows):
            r.SetUb(float(max(0.0, nodes[b])))
        need = np.zeros(len(self.tier_rows)) if need is None else need
        for (row, _), n in zip(self.tier_rows, need, strict=True):
            # A hair below: a row met only to GLOP's tolerance would price its slack, not its tasks.
            row.SetLb(float(max(0.0, n - _ROW_EASE)))  # type: ignore[attr-defined]
        if self.solver.Solve() != pywraplp.Solver.OPTIMAL:
            return None
        price = np.array([max(0.0, r.dual_value()) for r in self.rows]) * self.top
        sigma = np.array([max(0.0, r.dual_value()) for r in self.node_rows]) * self.top
        mu = np.array([max(0.0, -row.dual_value()) for row, _ in self.tier_rows]) * self.top  # type: ignore[attr-defined]
        return price, sigma, mu, self.obj.Value() * self.top

    def values(self) -> np.ndarray:
        return np.array([max(0.0, v.solution_value()) for v in self.vars])  # type: ignore[attr-defined]

    def generate(
        self,
        tasks: np.ndarray,
        nodes: np.ndarray,
        deadline: float | None,
        rounds: int,
        price_s: float,
        need: np.ndarray | None = None,
    ) -> tuple[float, int, bool]:
        """Column generation for `tasks` and `nodes` free (and the tier rows asking for `need`):
        (the least U(pi, mu) seen, an upper bound on the gain of any placement of them that meets
        the tier rows; the rounds run; whether no column improves the LP any more, so that it is
        solved). With tier rows, prices start from the LP over the columns found so far."""
        need = np.zeros(len(self.tier_rows)) if need is None else need
        # No plan gains more than every task with a positive gain placed: once the LP reaches that,
        # it is solved (column generation would tail off proving it, as when a whole tier fits).
        cap = float(np.maximum(self.gain, 0.0) @ np.maximum(tasks, 0.0))
        price, sigma, mu = np.zeros(tasks.size), np.zeros(nodes.size), np.zeros(len(self.tier_rows))
        if self.tier_rows and self.cols:
            solved = self.solve(tasks, nodes, need)
            if solved is not None:
                price, sigma, mu, value = solved
                if value >= cap * (1 - 1e-12) - 1e-9 * self.top:
                    return cap, 0, True
        best = cap
        done = 0
        while True:
            remaining = np.inf if deadline is None else deadline - time.monotonic()
            gain = self.gain - price
            for (_, mask), m in zip(self.tier_rows, mu, strict=True):
                gain = gain + m * mask
            upper = float(price @ tasks) - float(mu @ np.maximum(need, 0.0))
            new = []
            for b, pr in enumerate(self.prices):
                if nodes[b] <= 0:
                    continue
                limit = min(price_s, remaining / max(1, len(self.prices)))
                ub, found = pr.solve(gain, tasks, limit, self.top)
                upper += nodes[b] * max(0.0, ub)
                tol = 1e-9 * self.top * (1.0 + float(mu.max(initial=0.0)))
                new.extend(
                    (b, x, u) for x, u in found[-self.per_pricing :] if float(gain @ x) > sigma[b] + tol
                )
            best = min(best, upper)
            done += 1
            for b, x, u in new:
                self.add(b, x, u)
            if not new or done >= rounds or (deadline is not None and past(deadline)):
                return best, done, not new
            solved = self.solve(tasks, nodes, need)
            if solved is None:
                return best, done, False
            price, sigma, mu, value = solved
            if value >= cap * (1 - 1e-12) - 1e-9 * self.top:
                return cap, done, True


#: Once every column of the dive's LP is below one node, the nodes left over this many are rounded
#: up per LP (the largest lambdas first), then the LP is solved again.
TAIL_STEP = 4
#: Price of a task short on a tier row per tier above the last, in units of the largest gain: high
#: enough that the LP trades no higher-tier task for lower-tier ones (a node holds at most a few
#: dozen tasks), low enough for GLOP.
SLACK_PRICE = 100.0


def _top_values(values: np.ndarray, counts: np.ndarray, n: int) -> float:
    """The sum of the `n` largest values, value i repeated counts[i] times."""
    order = np.argsort(-values, kind="stable")
    took = np.minimum(counts[order], np.maximum(0, n - np.concatenate([[0], np.cumsum(counts[order])[:-1]])))
    return float(values[order] @ took)


@dataclass
class NodePatterns:
    """The bound and the master LP (for a plan: `dive`)."""

    bound: float
    stats: dict[str, bool | int | float | str]
    shape_of_task: np.ndarray  # int64 [T], -1 for tasks that fit nowhere
    node_class: np.ndarray  # int64 [N], -1 for nodes without usable GPUs
    master: _Master
    converged: bool  # column generation ended with no improving column: the LP is solved
    tier_of_shape: np.ndarray | None = None  # int64 [I], 0 the highest tier (lexicographic stages)
    need: np.ndarray | None = None  # int64: Z_j, per tier row (every tier but the last)

    def dive(
        self, deadline: float | None = None, rounds: int = 1, price_s: float = 2.0
    ) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
        """Whole numbers of nodes per pattern, (b, x [I], u [J], nodes), by diving on the master LP: solve
        it for the nodes and tasks still free (a few rounds of column generation first), fix
        floor(lambda) of every column, repeat until no node or no value is left. Fixing
        floor(lambda) keeps every shape within its count. Once every lambda is below 1, the columns
        of the largest lambda are rounded up to one node each, a share of the nodes left at a time
        (`TAIL_STEP`), each cut to the tasks still left, so that what is fixed never counts a task
        twice and the tier rows ask for exactly what is still missing of Z_j (a column that asks for
        a task already taken would leave a task of a high tier out unseen). Stops at `deadline`."""
        m = self.master
        nodes = m.m_b.copy()
        tasks = m.sh.count.astype(np.float64)
        need = None if self.need is None else self.need.astype(np.float64)
        masks = [mask for _, mask in m.tier_rows]
        fixed: list[tuple[int, np.ndarray, np.ndarray, int]] = []
        while nodes.sum() > 0 and not (deadline is not None and past(deadline)):
            m.generate(tasks, nodes, deadline, rounds, price_s, need)
            solved = m.solve(tasks, nodes, need)
            if solved is None or (solved[3] <= 1e-9 * m.top and not (need is not None and need.any())):
                break
            value = m.values()
            take = np.floor(value + 1e-9).astype(np.int64)
            if not take.any():
                if value.max(initial=0.0) <= 1e-9:
                    break
                up = np.argsort(-value, kind="stable")[: max(1, int(nodes.sum()) // TAIL_STEP)]
                take[up[value[up] > 1e-9]] = 1
            before = len(fixed)
            for j in np.argsort(-value, kind="stable"):
                b, x, u = m.cols[j]
                n = int(min(take[j], nodes[b]))
                if n <= 0:
                    continue
                if value[j] < 1:  # rounded up: cut to the tasks still left
                    x = np.minimum(x, np.floor(np.maximum(tasks, 0.0) + 1e-9).astype(np.int64))
                    if not x.any():
                        continue
                fixed.append((b, x, u, n))
                nodes[b] -= n
                tasks -= n * x
                if need is not None:
                    need -= n * np.array([x[mask].sum() for mask in masks])
            if len(fixed) == before:
                break  # nothing more to fix (the LP holds no column with a task left)
        return fixed

    def tier_counts(self, assign: np.ndarray) -> np.ndarray:
        """int64 [tiers]: the tasks `assign` places of each tier (0 the highest)."""
        assert self.tier_of_shape is not None
        shape = self.shape_of_task[(assign[:, 0] >= 0) & (self.shape_of_task >= 0)]
        return np.bincount(self.tier_of_shape[shape], minlength=int(self.tier_of_shape.max()) + 1)

    def tier_bound(self, placed: np.ndarray, deadline: float | None = None, price_s: float = 2.0) -> float:
        """An upper bound on the penalty placed by every plan that, tier by tier from the highest,
        places at least `placed[j]` tasks of tier j (0 the highest) (module docstring, 'tier by
        tier'), by one more stage of column generation."""
        if self.tier_of_shape is None or self.need is None:
            raise ValueError("tier_bound needs the lexicographic stages")
        m, sh, tier = self.master, self.master.sh, self.tier_of_shape
        k = int(self.need.size) + 1
        first = next((j for j in range(k - 1) if placed[j] < self.need[j]), k - 1)
        m.set_gain(np.where(tier >= first, sh.value, 0.0))
        need = self.need.astype(np.float64)
        if first < k - 1:
            need[first] = placed[first]
            need[first + 1 :] = 0.0
        upper, _, _ = m.generate(sh.count.astype(np.float64), m.m_b, deadline, 200, price_s, need)
        held = sum(
            _top_values(sh.value[tier == j], sh.count[tier == j], int(self.need[j])) for j in range(first)
        )
        return held + upper


def _lexicographic(
    master: _Master,
    tier_of_shape: np.ndarray,
    deadline: float | None,
    max_rounds: int,
    price_s: float,
) -> tuple[float, np.ndarray, int, bool]:
    """The stages of the module docstring ('priorities'): (U, the upper bound on the penalty any
    plan places; Z per tier but the last; rounds; whether every stage's LP was solved)."""
    sh = master.sh
    k = int(tier_of_shape.max()) + 1
    master.per_pricing = MAX_COLUMNS
    counts = sh.count.astype(np.float64)
    need: list[int] = []
    rounds, converged = 0, True
    upper = np.inf
    for j in range(k):
        mask = tier_of_shape == j
        last = j == k - 1
        master.set_gain(np.where(mask, sh.value if last else 1.0, 0.0))
        # A tenth of the time left is kept for each stage after this one (the last, over one tier's
        # penalties with every other tier held by a row, is solved in a few rounds).
        share = 1.0 - 0.1 * (k - 1 - j)
        until = None if deadline is None else time.monotonic() + share * (deadline - time.monotonic())
        upper, r, done = master.generate(
            counts, master.m_b, until, max_rounds, price_s, np.array(need, dtype=np.float64)
        )
        rounds += r
        converged &= done
        if not last:
            z = min(math.floor(upper + 1e-6), int(sh.count[mask].sum()))
            need.append(max(z, 0))
            master.add_row(mask, SLACK_PRICE ** (k - 1 - j))
    z_arr = np.array(need, dtype=np.int64)
    tier_total = [(sh.value[tier_of_shape == j], sh.count[tier_of_shape == j]) for j in range(k)]
    full = sum(_top_values(v, c, int(z)) for (v, c), z in zip(tier_total[:-1], z_arr, strict=True)) + upper
    cases = [full]
    for j in range(k - 1):  # a plan with fewer than Z_j tasks of tier j (and Z_i of every tier above)
        if z_arr[j] < 1:
            continue
        held = sum(_top_values(v, c, int(z)) for (v, c), z in zip(tier_total[:j], z_arr[:j], strict=True))
        rest = sum(float(v @ c) for v, c in tier_total[j + 1 :])
        cases.append(held + _top_values(*tier_total[j], int(z_arr[j]) - 1) + rest)
    return float(max(cases)), z_arr, rounds, converged


def _tiers(p: FleetProgram, sh: _Shapes) -> np.ndarray:
    """int64 [I]: the tier of each shape, 0 the highest priority among the tasks with a home."""
    pr = p.priority[sh.rep]
    levels = np.unique(pr)[::-1]
    return np.searchsorted(-levels, -pr).astype(np.int64)


def node_pattern_bound(
    p: FleetProgram,
    deadline: float | None = None,
    max_rounds: int = 200,
    price_s: float = 2.0,
    lexicographic: bool = False,
) -> NodePatterns | None:
    """The node-pattern bound (module docstring) by column generation until `deadline`; None when
    it does not apply. `lexicographic`: by the stages of tiers (module docstring, 'priorities'),
    when there is more than one."""
    started = time.monotonic()
    if not applicable(p):
        return None
    sh = _shapes(p)
    node_class, reps, gcls, gpus, mems = _node_classes(p)
    if not reps.size:
        return None
    prices = _pricings(p, sh, reps, gcls, gpus, mems)
    if prices is None:
        return None
    m_b = np.bincount(node_class[node_class >= 0], minlength=reps.size).astype(np.float64)
    master = _Master(sh, prices, m_b)
    tier_of_shape = _tiers(p, sh) if lexicographic else None
    need = None
    if tier_of_shape is not None and tier_of_shape.max(initial=0) > 0:
        upper, need, rounds, converged = _lexicographic(master, tier_of_shape, deadline, max_rounds, price_s)
    else:
        tier_of_shape = None
        upper, rounds, converged = master.generate(
            sh.count.astype(np.float64), m_b, deadline, max_rounds, price_s
        )
    bound = float(p.penalty.sum() - upper)
    stats: dict[str, bool | int | float | str] = {
        "pattern_shapes": int(sh.rep.size),
        "pattern_node_classes": int(reps.size),
        "pattern_bound": bound,
        "pattern_rounds": rounds,
        "pattern_converged": converged,
        "pattern_columns": len(master.cols),
        "pattern_s": round(time.monotonic() - started, 4),
    }
    if need is not None:
        stats["pattern_tier_counts"] = ",".join(str(int(z)) for z in need)
    return NodePatterns(bound, stats, sh.of_task, node_class, master, converged, tier_of_shape, need)


__all__ = ["NodePatterns", "applicable", "node_pattern_bound"]

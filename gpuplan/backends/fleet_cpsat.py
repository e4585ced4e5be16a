r"""Exact CP-SAT model of the fleet program (formulation in :mod:`gpuplan.program.fleet`).

Variables exist only where they can be 1: :math:`x_{tg}` for eligible pairs on nodes that can take
the whole gang, :math:`z_{tn}` for nodes with at least :math:`k_t` eligible usable GPUs (of one type
when ``same_type``) and room for the task's CPU and RAM, :math:`w_{tn\kappa}` only when a
same-type gang has more than one candidate type on a node, :math:`y_t` for optional tasks.
Auxiliaries appear only when their objective weight is positive: dataset copies :math:`v_{Dn}`,
used GPUs :math:`u_g` (not for host slots, which are no GPUs), used nodes :math:`o_n`, peak
utilization :math:`U`. A CPU-only task has one :math:`x` per node, on its host slot, equal to
:math:`z_{tn}`; host slots carry no load, so only the node rows hold it.

Integer scaling
---------------
CP-SAT needs integers. The objective coefficients share one power of ten: the smallest that makes
them all integral, else the largest keeping the largest plan's objective within about
:math:`10^{12}`; coefficients are then rounded to the nearest unit. Each resource (primary load,
GPU memory, node CPU, node RAM) gets its own power of ten the same way. When a resource scales
exactly the integer constraints are the float ones. When it does not, loads are rounded *up* and
capacities *down* from :math:`\mathrm{cap}\cdot s\,(1 + 10^{-9})` (the relative tolerance
:meth:`FleetProgram.violations` grants), so every integer-feasible plan passes ``violations``; the
integer program is then also a relaxation of the exact one (every plan within the exact capacities
stays integer-feasible) when that :math:`10^{-9}` slack exceeds the rounding of all tasks, which
holds for any realistic size but is checked; if it fails, no bound is reported and the solver's
INFEASIBLE is reported as UNKNOWN.

Balance: :math:`U` is an integer on a grid of :math:`Q` steps of the (uniform) primary capacity,
:math:`\mathrm{cap}_{int} U \ge Q \sum_t \ell_{int}\, x_{tg}`. When the primary resource scales
exactly to at most :math:`10^5` units, :math:`Q` is that integer capacity and the balance term is
exact; otherwise :math:`Q = 1000`, a 0.1 % grid: the solver then optimizes
:math:`\lceil 1000\,\mathrm{util} \rceil / 1000`, which may differ from the true optimum by up to
:math:`\lambda_{\mathrm{bal}}/1000`, and the reported bound is lowered by that much.

Symmetry: GPUs of one node and one class that are usable and nobody's current GPU are
interchangeable (same eligibility, costs, loads and memory), so they are filled in order of
decreasing primary load; a hint is permuted into that order before it is handed to the solver.

The reported objective is always recomputed with :meth:`FleetProgram.objective` on the decoded
assignment; the bound is the solver's, converted back and lowered by every rounding that could
make it exceed the true optimum. Status OPTIMAL means that objective is within :math:`10^{-9}`
(relative) of that bound; an optimum of the rounded model that is not (the balance grid) is
FEASIBLE, with ``stats['cpsat_status']`` still saying OPTIMAL.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuplan.interrupt import solve_cpsat
from gpuplan.program.compile import CAPACITY_TOLERANCE, IntResource, _pow10_scale, scale_resource
from gpuplan.program.fleet import FleetProgram
from gpuplan.status import Status

_COST_BUDGET = 1e12  # the largest plan's objective, in integer units
_HOLD_BUDGET = 1e15  # the largest value of a held objective, in integer units (exact in float64)
_EXACT_BALANCE_MAX = 100_000  # largest integer capacity used directly as the balance grid
_BALANCE_GRID = 1000  # otherwise: 0.1 % of capacity
_TOL = CAPACITY_TOLERANCE  # = the relative tolerance of FleetProgram.violations


@dataclass
class FleetResult:
    """CP-SAT's answer. `objective` and `bound` (a proven lower bound) are in the program's units."""

    assign: np.ndarray  # int64 [T, K], NONE-padded; all NONE when there is no solution
    status: Status
    objective: float | None
    bound: float | None
    # (seconds since the call, the solver's objective in user units) per solution found
    incumbents: list[tuple[float, float]] = field(default_factory=list)
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


def _cap_ok(value: float, cap: float) -> bool:
    """The per-item capacity test of FleetProgram.violations."""
    return value <= cap * (1 + _TOL) + _TOL


class _Model:
    """The CP-SAT model of one program, with the index maps needed to hint and decode it."""

    def __init__(self, program: FleetProgram) -> None:
        from ortools.sat.python import cp_model

        self.cp = cp_model
        self.p = program
        self.model = cp_model.CpModel()
        self.x: list[Any] = []  # x[i]: task xt[i] on GPU xg[i]
        self.xt: list[int] = []
        self.xg: list[int] = []
        self.x_of: dict[tuple[int, int], int] = {}
        self.z: dict[tuple[int, int], Any] = {}
        self.w: dict[tuple[int, int, int], Any] = {}
        self.y: dict[int, Any] = {}
        self.v: dict[tuple[int, int], Any] = {}
        self.u: dict[int, Any] = {}
        self.o: dict[int, Any] = {}
        self.big_u: Any = None
        self.q = 0  # balance grid: U counts capacity / q
        self.bal_slack = 0.0  # how far U / q may exceed the utilization, times its weight
        self.relaxes = True  # every exactly feasible plan is integer-feasible (bounds hold)
        self.exact_loads = True
        self.scales: dict[str, float] = {}
        self.symmetry_groups = 0
        self.hint_value: dict[int, int] | None = None  # variable index -> its hinted value
        self.stats: dict[str, bool | int | float | str] = {}

    # --- structure ---------------------------------------------------------------------------------
    def add_placement(self) -> int | None:
        """x, z, w, y and the gang equations; returns a required task that fits no node, if any."""
        p, m = self.p, self.model
        for t in range(p.n_tasks):
            k = int(p.gang[t])
            by_node: dict[int, list[int]] = {}
            for g in np.flatnonzero(p.eligible(t)).tolist():
                by_node.setdefault(int(p.gpu_node[g]), []).append(g)
            lits = []
            for n, gs in by_node.items():
                if len(gs) < k or not (_cap_ok(p.cpu[t], p.node_cpu[n]) and _cap_ok(p.ram[t], p.node_ram[n])):
                    continue
                groups = [gs]
                if p.same_type[t] and k > 1:
                    by_type: dict[int, list[int]] = {}
                    for g in gs:
                        by_type.setdefault(int(p.gpu_type[g]), []).append(g)
                    groups = [grp for grp in by_type.values() if len(grp) >= k]
                    if not groups:
                        continue
                zv = self.z[t, n] = m.new_bool_var(f"z{t},{n}")
                lits.append(zv)
                sums = [[self._new_x(t, g) for g in grp] for grp in groups]
                if len(groups) == 1:
                    m.add(sum(sums[0]) == k * zv)
                    continue
                choice = []
                for grp, xs in zip(groups, sums, strict=True):
                    kappa = int(p.gpu_type[grp[0]])
                    wv = self.w[t, n, kappa] = m.new_bool_var(f"w{t},{n},{kappa}")
                    choice.append(wv)
                    m.add(sum(xs) == k * wv)
                m.add(sum(choice) == zv)
            if p.optional[t]:
                self.y[t] = m.new_bool_var(f"y{t}")
                lits.append(self.y[t])
            if not lits:
                return t
            m.add_exactly_one(lits)
        self.xt_a = np.array(self.xt, dtype=np.int64)
        self.xg_a = np.array(self.xg, dtype=np.int64)
        self.by_gpu: list[list[int]] = [[] for _ in range(p.n_gpus)]
        for i, g in enumerate(self.xg):
            self.by_gpu[g].append(i)
        self.by_node: list[list[tuple[int, Any]]] = [[] for _ in range(p.n_nodes)]
        for (t, n), zv in self.z.items():
            self.by_node[n].append((t, zv))
        return None

    def _new_x(self, t: int, g: int) -> Any:
        self.x_of[t, g] = len(self.x)
        self.xt.append(t)
        self.xg.append(g)
        self.x.append(self.model.new_bool_var(f"x{t},{g}"))
        return self.x[-1]

    def _note(self, name: str, res: IntResource) -> None:
        self.scales[name] = res.scale
        self.relaxes &= res.relaxes
        self.exact_loads &= res.exact

    def _knapsack(self, ids: list[int] | list[Any], coefs: list[int], cap: int) -> None:
        """sum coefs * vars <= cap, unless it can never bind."""
        if ids and sum(coefs) > cap:
            self.model.add(self.cp.LinearExpr.weighted_sum(ids, coefs) <= cap)

    def add_resources(self) -> None:
        """Primary load and memory per GPU, CPU and RAM per node, in integers."""
        p = self.p
        cls = p.gpu_class[self.xg_a]
        self.prim = scale_resource(p.load_c[self.xt_a, cls], np.array([p.capacity]), p.n_tasks)
        self._note("load", self.prim)
        self.cap_prim = int(self.prim.cap[0])
        load = self.prim.load.tolist()
        for ids in self.by_gpu:
            self._knapsack([self.x[i] for i in ids], [load[i] for i in ids], self.cap_prim)
        if not p.horizon and self.x:
            mem = scale_resource(p.gpu_mem[self.xt_a], p.mem_cap, p.n_tasks)
            self._note("mem", mem)
            need = mem.load.tolist()
            for g, ids in enumerate(self.by_gpu):
                self._knapsack([self.x[i] for i in ids], [need[i] for i in ids], int(mem.cap[g]))
        tasks = sorted({t for t, _ in self.z})
        for name, use, have in (("cpu", p.cpu, p.node_cpu), ("ram", p.ram, p.node_ram)):
            finite = np.flatnonzero(np.isfinite(have))
            if not finite.size or not tasks:
                continue
            res = scale_resource(use[tasks], have[finite], p.n_tasks)
            self._note(name, res)
            need = dict(zip(tasks, res.load.tolist(), strict=True))
            for n, cap in zip(finite.tolist(), res.cap.tolist(), strict=True):
                pairs = self.by_node[n]
                self._knapsack([zv for _, zv in pairs], [need[t] for t, _ in pairs], cap)

    def add_spread(self) -> None:
        """At most one task of a spread group per node."""
        for pairs in self.by_node:
            groups: dict[int, list[Any]] = {}
            for t, zv in pairs:
                if self.p.spread[t] >= 0:
                    groups.setdefault(int(self.p.spread[t]), []).append(zv)
            for lits in groups.values():
                if len(lits) > 1:
                    self.model.add_at_most_one(lits)

    def add_symmetry(self) -> None:
        """Interchangeable GPUs (one node, one class, usable, nobody's current GPU) are filled in
        order of decreasing primary load: any plan can be permuted into that order at equal value."""
        p = self.p
        current = set(p.current[p.current >= 0].tolist())
        groups: dict[tuple[int, int], list[int]] = {}
        for g in range(p.n_gpus):
            if p.gpu_ok[g] and g not in current and self.by_gpu[g]:
                groups.setdefault((int(p.gpu_node[g]), int(p.gpu_class[g])), []).append(g)
        self.groups = [gs for gs in groups.values() if len(gs) > 1]
        load = self.prim.load.tolist()
        for gs in self.groups:
            for a, b in itertools.pairwise(gs):
                ia, ib = self.by_gpu[a], self.by_gpu[b]
                lhs = self.cp.LinearExpr.weighted_sum([self.x[i] for i in ia], [load[i] for i in ia])
                rhs = self.cp.LinearExpr.weighted_sum([self.x[i] for i in ib], [load[i] for i in ib])
                self.model.add(lhs >= rhs)
        self.symmetry_groups = len(self.groups)

    # --- objective -----------------------------------------------------------------------------------
    def add_objective(
        self, holds: Sequence[FleetProgram] = (), extra: Sequence[tuple[Any, float, int]] = ()
    ) -> None:
        """Every objective term with float coefficients, then one power-of-ten scaling to integers.
        The auxiliaries are made for the objective and for every program in `holds` (`add_holds`).
        `extra`: (variable >= 0, coefficient, upper bound) terms of a model built on this one (the
        scheduled model's time terms), scaled with the rest."""
        p = self.p
        self._add_aux([p, *holds])
        terms, magnitude, slots, x_coef, y_coef = self._terms(p)
        terms += list(extra)
        magnitude += sum(abs(c) * b for _, c, b in extra)
        slots += sum(b for _, _, b in extra)
        # Every plan pays at least each task's cheapest option (all coefficients are >= 0); CP-SAT's
        # own bound can be weaker than this early on, after presolve shifts the objective.
        per_task_min = np.full(p.n_tasks, np.inf)
        np.minimum.at(per_task_min, self.xt_a, x_coef)
        place_min = p.gang * per_task_min + p.transfer_each
        self.trivial_bound = float(sum(min(place_min[t], y_coef.get(t, np.inf)) for t in range(p.n_tasks)))
        coef = np.array([c for _, c, _ in terms], dtype=np.float64)
        ub = np.array([b for _, _, b in terms], dtype=np.float64)
        scale, exact = _pow10_scale(coef, max(magnitude, 1e-300), _COST_BUDGET)
        coef_int = np.round(coef * scale).astype(np.int64)
        if terms:
            self.model.minimize(self.cp.LinearExpr.weighted_sum([v for v, _, _ in terms], coef_int.tolist()))
        self.cost_scale, self.cost_exact = scale, exact
        # Rounding raises a plan's integer objective by at most this much (user units); so a bound
        # on the integer program, lowered by it, bounds the float program.
        err = (coef_int - coef * scale) / scale
        self.cost_slack = (
            0.0 if exact else min(float(np.maximum(err, 0.0) @ ub), 0.5 * (slots + self.q) / scale)
        )

    def _add_aux(self, programs: list[FleetProgram]) -> None:
        """Dataset copies v, used GPUs u, used nodes o and the peak U, where some program weighs them."""
        p, m = self.p, self.model
        for (t, n), zv in self.z.items():
            d = int(p.dataset[t])
            if d < 0 or not any(q.dataset_charge[d] > 0 for q in programs):
                continue
            if (d, n) not in self.v:
                self.v[d, n] = m.new_bool_var(f"v{d},{n}")
            m.add_implication(zv, self.v[d, n])
        if any(q.w_gpus > 0 for q in programs):
            for g, ids in enumerate(self.by_gpu):
                if ids and not p.host[g]:  # a host slot is no GPU
                    self.u[g] = m.new_bool_var(f"u{g}")
                    for i in ids:
                        m.add_implication(self.x[i], self.u[g])
        if any(q.w_nodes > 0 for q in programs):
            for n, pairs in enumerate(self.by_node):
                if pairs:
                    self.o[n] = m.new_bool_var(f"o{n}")
                    for _, zv in pairs:
                        m.add_implication(zv, self.o[n])
        if any(q.w_balance > 0 for q in programs):
            self._add_balance()

    def _terms(
        self, q: FleetProgram
    ) -> tuple[list[tuple[Any, float, int]], float, int, np.ndarray, dict[int, float]]:
        """The objective of program `q` (this model's structure, its own coefficients) as
        (variable, coefficient, upper bound) terms; a bound on its value over all plans; the most
        Boolean terms that can be 1 at once; the x and y coefficients."""
        terms: list[tuple[Any, float, int]] = []
        magnitude = 0.0
        slots = 0
        xt, xg = self.xt_a, self.xg_a
        x_coef = q.cost_c[xt, q.gpu_class[xg]]
        moved = ~np.any(q.current[xt] == xg[:, None], axis=1)
        x_coef = x_coef + np.where(moved & (q.current[xt, 0] >= 0), q.move_cost[xt], 0.0)
        terms += [(self.x[i], float(x_coef[i]), 1) for i in np.flatnonzero(x_coef).tolist()]
        per_task = np.zeros(q.n_tasks)
        np.maximum.at(per_task, xt, np.abs(x_coef))
        terms += [(zv, float(q.transfer_each[t]), 1) for (t, _), zv in self.z.items() if q.transfer_each[t]]
        y_coef = {
            t: float(q.penalty[t] + (q.move_cost[t] * q.gang[t] if q.current[t, 0] >= 0 else 0.0))
            for t in self.y
        }
        terms += [(yv, y_coef[t], 1) for t, yv in self.y.items() if y_coef[t]]
        for t in range(q.n_tasks):
            magnitude += max(
                q.gang[t] * per_task[t] + abs(float(q.transfer_each[t])), abs(y_coef.get(t, 0.0))
            )
            slots += int(q.gang[t]) + 1
        for (d, _), vv in self.v.items():
            if q.dataset_charge[d] > 0:
                terms.append((vv, float(q.dataset_charge[d]), 1))
                magnitude += float(q.dataset_charge[d])
        if q.w_gpus > 0:
            terms += [(uv, float(q.w_gpus), 1) for uv in self.u.values()]
            magnitude += q.w_gpus * len(self.u)
        if q.w_nodes > 0:
            terms += [(ov, float(q.w_nodes), 1) for ov in self.o.values()]
            magnitude += q.w_nodes * len(self.o)
        slots += len(self.v) + len(self.u) + len(self.o)
        if q.w_balance > 0:
            terms.append((self.big_u, float(q.w_balance) / self.q, self.q))
            magnitude += float(q.w_balance)
        return terms, magnitude, slots, x_coef, y_coef

    def add_holds(self, holds: Sequence[tuple[FleetProgram, float]]) -> None:
        """Each (program q, value V): q's objective may not exceed V (the stages of a lexicographic
        solve). In integers at a finer scale than the objective's (`_HOLD_BUDGET`): with a hint, at
        most the hint's own integer value, so the hint (the earlier stage's plan) stays feasible and
        every solution is no worse in q's rounded objective; without one, V rounded up by the most
        the rounding of all terms can add. `FleetProgram.objective` is what the caller checks."""
        for q, value in holds:
            terms, magnitude, slots, _, _ = self._terms(q)
            if not terms:
                continue
            coef = np.array([c for _, c, _ in terms], dtype=np.float64)
            scale, _ = _pow10_scale(coef, max(magnitude, 1e-300), _HOLD_BUDGET)
            coef_int = np.round(coef * scale).astype(np.int64)
            variables = [v for v, _, _ in terms]
            if self.hint_value is not None:
                hinted = [self.hint_value.get(v.index, 0) for v in variables]
                rhs = int(sum(int(c) * h for c, h in zip(coef_int.tolist(), hinted, strict=True)))
            else:
                rhs = math.ceil(value * scale + 0.5 * (slots + self.q))
            self.model.add(self.cp.LinearExpr.weighted_sum(variables, coef_int.tolist()) <= rhs)
        self.stats["cpsat_holds"] = len(holds)

    def _add_balance(self) -> None:
        """U >= the utilization of every GPU, on a grid of q steps (see the module docstring)."""
        p, prim, cap = self.p, self.prim, self.cap_prim
        self.q = cap if prim.exact and 0 < cap <= _EXACT_BALANCE_MAX else _BALANCE_GRID
        if not (self.q == cap and prim.exact):
            # U / q < utilization + 1/q, plus the upward rounding of loads when inexact.
            extra = 0.0 if prim.exact else p.n_tasks / max(p.capacity * prim.scale, 1.0)
            self.bal_slack = p.w_balance * (1.0 / self.q + extra)
        self.big_u = self.model.new_int_var(0, self.q, "U")
        div = math.gcd(self.q, cap) or 1
        load = prim.load.tolist()
        for ids in self.by_gpu:
            if ids:
                expr = self.cp.LinearExpr.weighted_sum(
                    [self.x[i] for i in ids], [load[i] * (self.q // div) for i in ids]
                )
                self.model.add(expr <= (cap // div) * self.big_u)

    # --- hint and decoding ---------------------------------------------------------------------------
    def add_hint(self, hint: np.ndarray) -> None:
        """Hint every variable from an assignment (GPUs permuted into the symmetry order first)."""
        p, m = self.p, self.model
        hint = np.array(hint, dtype=np.int64)
        load = np.zeros(p.n_gpus, dtype=np.int64)
        for t, g in zip(*np.nonzero(hint >= 0), strict=True):
            i = self.x_of.get((int(t), int(hint[t, g])))
            load[hint[t, g]] += 0 if i is None else int(self.prim.load[i])
        relabel = np.arange(p.n_gpus)
        for gs in self.groups:
            order = sorted(gs, key=lambda g: (-load[g], g))
            relabel[order] = gs
        if relabel.size:  # (no GPU at all: nothing to relabel, every row NONE)
            hint = np.where(hint >= 0, relabel[np.maximum(hint, 0)], hint)
        load[relabel] = load.copy()
        used = {(t, int(g)) for t in range(p.n_tasks) for g in hint[t] if g >= 0}
        node_of = {t: int(p.gpu_node[hint[t, 0]]) for t in range(p.n_tasks) if hint[t, 0] >= 0}
        values: dict[int, int] = {}

        def put(var: Any, value: bool | int) -> None:
            values[var.index] = int(value)
            m.add_hint(var, value)

        for (t, g), i in self.x_of.items():
            put(self.x[i], (t, g) in used)
        for (t, n), zv in self.z.items():
            put(zv, node_of.get(t) == n)
        for (t, n, kappa), wv in self.w.items():
            put(wv, node_of.get(t) == n and int(p.gpu_type[hint[t, 0]]) == kappa)
        for t, yv in self.y.items():
            put(yv, t not in node_of)
        copies = {(int(p.dataset[t]), n) for t, n in node_of.items()}
        for key, vv in self.v.items():
            put(vv, key in copies)
        gpus = {g for _, g in used}
        for g, uv in self.u.items():
            put(uv, g in gpus)
        nodes = set(node_of.values())
        for n, ov in self.o.items():
            put(ov, n in nodes)
        if self.big_u is not None:
            peak = int(load.max(initial=0))
            put(self.big_u, min(self.q, -(-peak * self.q // max(self.cap_prim, 1))))
        self.hint_value = values

    def decode(self, solver: Any) -> np.ndarray:
        """The solver's assignment [T, K]."""
        assign = self.p.empty_assign()
        on = [solver.boolean_value(v) for v in self.x]
        for t, g, chosen in zip(self.xt, self.xg, on, strict=True):
            if chosen:
                row = assign[t]
                row[np.argmax(row < 0)] = g
        return assign


def solve_fleet_cpsat(
    program: FleetProgram,
    *,
    deadline: float,
    workers: int = 1,
    seed: int = 0,
    hint: np.ndarray | None = None,
    hold: Sequence[tuple[FleetProgram, float]] = (),
) -> FleetResult:
    """Solve the fleet program exactly with CP-SAT until `deadline` (a time.monotonic() instant).

    `hint` (an assignment [T, K]) seeds the search; when it is feasible and better than what the
    solver found (or the solver found nothing), it is returned instead. Status OPTIMAL means the
    returned objective is within 1e-9 (relative) of the proven bound. `hold`: programs of the same
    structure (earlier stages of a lexicographic solve) whose objectives may not exceed the hint's
    (`_Model.add_holds`); the bound is then one over the plans that keep them.
    """
    from ortools.sat.python import cp_model

    started = time.monotonic()
    p = program
    mm = _Model(p)
    stats = mm.stats
    homeless = mm.add_placement()
    stats["cpsat_vars_x"] = len(mm.x)
    stats["cpsat_vars_z"] = len(mm.z)
    if homeless is not None:
        stats["cpsat_build_s"] = round(time.monotonic() - started, 4)
        stats["cpsat_message"] = f"required task {homeless} fits on no node"
        return _with_hint(p, hint, FleetResult(p.empty_assign(), Status.INFEASIBLE, None, None, [], stats))
    mm.add_resources()
    mm.add_spread()
    mm.add_symmetry()
    mm.add_objective([q for q, _ in hold])
    if hint is not None and hint.shape == (p.n_tasks, p.max_gang):
        mm.add_hint(hint)
    if hold:
        mm.add_holds(hold)
    stats.update(
        {
            "cpsat_cost_scale": mm.cost_scale,
            "cpsat_cost_exact": bool(mm.cost_exact),
            "cpsat_loads_exact": bool(mm.exact_loads),
            "cpsat_loads_relax": bool(mm.relaxes),
            "cpsat_load_scales": ", ".join(f"{k}={v:g}" for k, v in mm.scales.items()),
            "cpsat_balance_grid": mm.q,
            "cpsat_balance_exact": bool(mm.bal_slack == 0.0),
            "cpsat_symmetry_groups": mm.symmetry_groups,
        }
    )

    solver = cp_model.CpSolver()
    built = time.monotonic() - started
    solver.parameters.max_time_in_seconds = max(0.05, deadline - time.monotonic())
    solver.parameters.num_workers = max(1, int(workers))
    solver.parameters.random_seed = int(seed)
    timeline: list[tuple[float, float]] = []
    scale = mm.cost_scale

    class _Recorder(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            timeline.append((time.monotonic() - started, self.objective_value / scale))

    code = solve_cpsat(solver, mm.model, _Recorder())
    stats.update(
        {
            "cpsat_build_s": round(built, 4),
            "cpsat_solve_s": round(solver.wall_time, 4),
            "cpsat_status": solver.status_name(code),
            "cpsat_branches": int(solver.num_branches),
            "cpsat_conflicts": int(solver.num_conflicts),
        }
    )
    raw = {
        cp_model.OPTIMAL: Status.OPTIMAL,
        cp_model.FEASIBLE: Status.FEASIBLE,
        cp_model.INFEASIBLE: Status.INFEASIBLE,
    }.get(code, Status.UNKNOWN)
    if raw is Status.INFEASIBLE and not mm.relaxes:
        raw = Status.UNKNOWN  # the rounded model is stricter than the float one: no proof
    bound = None
    if raw is not Status.INFEASIBLE:
        bound = mm.trivial_bound * (1 - 1e-12)
        cp_bound = solver.best_objective_bound / scale - mm.cost_slack - mm.bal_slack
        if mm.relaxes and math.isfinite(cp_bound):
            bound = max(bound, cp_bound)
    if not raw.has_solution:
        return _with_hint(p, hint, FleetResult(p.empty_assign(), raw, None, bound, timeline, stats))
    assign = mm.decode(solver)
    objective = p.objective(assign)
    bound = None if bound is None else min(bound, objective)
    status = raw
    if status is Status.OPTIMAL and (bound is None or objective - bound > 1e-9 * max(1.0, abs(objective))):
        status = Status.FEASIBLE  # optimal for the rounded model only
    return _with_hint(p, hint, FleetResult(assign, status, objective, bound, timeline, stats))


def _with_hint(p: FleetProgram, hint: np.ndarray | None, res: FleetResult) -> FleetResult:
    """The hint instead of `res` when the hint is feasible and better (or `res` has no solution)."""
    if hint is None or hint.shape != (p.n_tasks, p.max_gang) or p.violations(hint):
        return res
    h_obj = p.objective(hint)
    if res.objective is not None and h_obj >= res.objective:
        return res
    res.stats["cpsat_returned_hint"] = True
    bound = None if res.bound is None else min(res.bound, h_obj)
    status = Status.FEASIBLE
    if bound is not None and h_obj - bound <= 1e-9 * max(1.0, abs(h_obj)):
        status = Status.OPTIMAL
    return FleetResult(np.array(hint, dtype=np.int64), status, h_obj, bound, res.incumbents, res.stats)


__all__ = ["FleetResult", "solve_fleet_cpsat"]

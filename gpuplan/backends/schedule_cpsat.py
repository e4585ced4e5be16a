r"""Exact CP-SAT model of the scheduled program (formulation in :mod:`gpuplan.program.schedule`).

Placement is the fleet model's (:mod:`gpuplan.backends.fleet_cpsat`): :math:`x_{tg}`,
:math:`z_{tn}`, :math:`w_{tn\kappa}` (same type), :math:`y_t` (dropped) with
:math:`\sum_{g \in n} x_{tg} = k_t z_{tn}`, and its objective terms. On top, per task with a
node, integer time variables (in units of :math:`1/\sigma` h):

.. math::

    S_t \in [\lceil \sigma r_t \rceil, H], \qquad E_t = S_t + P_t, \qquad
    P_t = \sum_g \hat d_{tg} x_{tg} \;(k_t = 1), \quad P_t = \max_g \hat d_{tg} x_{tg} \;(\text{gang}),

(a constant when all of t's options take equally long), and one optional interval
:math:`[S_t, E_t)` per :math:`x_{tg}` (present iff :math:`x_{tg}`) and per :math:`z_{tn}`. A
gang's intervals share :math:`S_t`, so it starts together on all its GPUs; one interval per
option makes tasks non-preemptive. Per GPU: ``AddCumulative`` on share (capacity
:math:`\hat 1`) and on memory, or ``AddNoOverlap`` when any two of its candidate tasks exceed a
capacity together (their memory then fits alone, by eligibility); per node: ``AddCumulative`` on
CPU and on host memory (finite capacities); per (spread group, node): ``AddNoOverlap`` (a
cumulative of capacity 1). With :math:`\pi_t = 1 - y_t` (1 for a required task, 0 for a task
without a node):

.. math::

    \pi_b \Rightarrow \pi_a,\quad \pi_b \Rightarrow E_a \le S_b \;\; \forall (a, b) \in P,
    \qquad \pi_t \Rightarrow E_t \le \lfloor \sigma \bar d_t \rfloor,

    \min\; \text{fleet terms} + \tfrac{\lambda_{mk}}{\sigma} M + \sum_t \tfrac{\lambda_{ct} w_t}{\sigma} C_t
    + \sum_t \tfrac{\lambda_{td} w_t}{\sigma} U_t, \qquad
    \pi_t \Rightarrow M \ge E_t,\; C_t \ge E_t,\; U_t \ge E_t - \lfloor \sigma \delta_t \rfloor,

with :math:`M, C_t, U_t \ge 0` (:math:`C_t` is :math:`E_t` itself for a required task).

Search
------
First CP-SAT's full portfolio (with 2 workers: one tree search with LP, which proves, and one that
interleaves neighbourhood searches) for ``1 - LNS_SHARE`` of the time. When that ends with a
schedule but no proof, the rest of the time goes to neighbourhood search alone (``use_lns_only``:
every worker relaxes parts of the best schedule), started from that schedule as a complete hint; the
bound is the best of the parts'. When the first part ends with no schedule (and no proof that none
exists), or the neighbourhood search ends before its time without a proof, the rest of the time is
the full search again (from the best schedule, if any): a neighbourhood needs a schedule to start
from, and no part should leave time unused (in one benchmark run of 30 s, a solve ended after 5 s
with the first part's schedule; it did not recur in three runs). In CP-SAT's log on mk15 (30 s) the
tree search gave only the first two of 23 schedules; the neighbourhood searches gave the rest. The
cost: a proof the tree search would find late in the limit may be lost; the time-indexed bound
below wins back small ones.

A schedule that meets the bound so far (the cheap one, CP-SAT's, the time-indexed one) ends the
solve: the first part's, checked when it ends, and each one the later searches find, checked by a
solution callback (`_tracker`, which also keeps the best schedule's objective and makespan). A
search once went on for the whole limit past such a schedule (mk09 in the benchmark: 27 s).

When the objective's only time term is the makespan, the time-indexed bound
(:mod:`gpuplan.bounds.time_indexed`, SCIP) runs in a thread beside the searches that follow the first
part: it raises the makespan bound by feasibility questions, from the cheap bound up to the best
makespan found so far (a question that a better schedule makes moot is dropped). When its bound
proves the best schedule, it stops the search running and the solve ends. Beside rather than
before: it takes the time it needs (from under a second to more than the limit) without a share to
guess, at the cost of a third of the CPU while both run on 2 cores. It is paced: once the questions
left below the best makespan, each as long as the last, cannot all be asked within the limit, it
stops and gives its CPU back (on mk06 it had raised the bound from 33 to 42 in 15 s, 15 questions
short of the best schedule, and went on for the whole limit). On the benchmark's job shops it
proves Kacem k4 (the solve ends after about 7 s) and mk02 (9 to 25 s), which CP-SAT alone proved at
one seed in three (k4) and never (mk02) within 30 s.

Integer scaling
---------------
Time: :math:`\sigma = 10^k`, the smallest that makes every eligible duration and every release
integral, else the largest keeping the horizon bound :math:`H` within ``_TIME_BUDGET`` units.
Durations are then rounded *up* (:math:`\hat d = \lceil \sigma d \rceil`), releases up, deadlines
*down*, so every plan of the model is feasible (the reported starts are the model's,
:math:`S_t / \sigma`; ends are recomputed exactly from the durations). Due times are rounded down,
so the model's tardiness is at least the true one. :math:`H = \max_t \lceil \sigma r_t \rceil +
\sum_t \max_g \hat d_{tg}`: with integer durations and releases some optimal schedule is
semi-active (each start a release or an end), and its starts are at most that.

The model is a *relaxation-exact* copy of the program, and its bound a bound of the program, only
when time is exact (integral durations and releases: then some optimal schedule has integer
starts, and a floored deadline excludes none of them) and the loads scale as the fleet model's do
(exact, or with the slack that keeps every float-feasible plan integer-feasible). The bound is
then the solver's, lowered by the objective rounding and by :math:`\lambda_{td} \sum_t w_t
(\sigma\delta_t - \lfloor \sigma \delta_t \rfloor) / \sigma` (the due rounding). Otherwise the
model only finds plans, the bound reported is the cheap one (the fleet model's per-task placement
bound plus :func:`gpuplan.program.schedule.lower_bound`), and INFEASIBLE becomes UNKNOWN. Loads:
shares and memory per GPU, CPU and host memory per node are scaled by
``program.compile.scale_resource``: exactly by a power of ten when one makes them integral, else
demands rounded up and capacities down (from :math:`(1 + 10^{-9})` times the capacity, the
verifier's tolerance). Costs share one power of ten with the time terms
(``_Model.add_objective``). ``note`` says which of these held.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuplan.backends.fleet_cpsat import _Model
from gpuplan.interrupt import in_context, past, solve_cpsat
from gpuplan.program.compile import _pow10_scale, scale_resource
from gpuplan.program.schedule import ScheduleProgram, lower_bound, makespan, objective, violations
from gpuplan.status import Status

_TIME_BUDGET = 1e8  # the horizon bound H, in integer time units

#: Share of the solver's time searched by neighbourhoods alone when the first part proves nothing.
#: Tried on the benchmark's job shops (30 s, 2 workers): 0 (full search throughout) left mk10 and
#: mk15 worse at seed 0 (217, 346 against 215, 340); 0.5 lost mk02's proof at two of seeds 0-2
#: (27: the time-indexed bound starts after the first part).
LNS_SHARE = 0.9

#: Below this many seconds the whole solve is one full search (no neighbourhood-only part).
LNS_MIN_S = 2.0


@dataclass
class ScheduleResult:
    """CP-SAT's schedule. `objective` and `bound` (proven) in user units; `note`: the scaling."""

    assign: np.ndarray  # int64 [T, K], NONE-padded
    start: np.ndarray  # float64 [T] hours, NaN where left out
    status: Status
    objective: float | None
    bound: float | None
    note: str = ""
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Time:
    """Integer time: value_int = hours x scale (rounded as the module docstring says)."""

    scale: float
    exact: bool  # durations and releases integral
    dur: np.ndarray  # int64 [T, C] (0 where ineligible)
    release: np.ndarray  # int64 [T]
    deadline: np.ndarray  # int64 [T], horizon where none
    due: np.ndarray  # int64 [T], -1 where none
    due_slack: float  # user units the due rounding may add to the tardiness term
    horizon: int


def _scale_time(sp: ScheduleProgram) -> _Time:
    f = sp.fleet
    ok = f.eligible_c & np.isfinite(sp.duration_c)
    d = np.where(ok, sp.duration_c, 0.0)
    rel = np.asarray(sp.release, dtype=np.float64)
    span = float(rel.max(initial=0.0) + d.max(axis=1, initial=0.0).sum())
    scale, exact = _pow10_scale(np.r_[d[ok], rel], max(span, 1e-300), _TIME_BUDGET)
    if exact:
        dur = np.round(d * scale).astype(np.int64)
        release = np.round(rel * scale).astype(np.int64)
    else:
        dur = np.ceil(d * scale - 1e-9).astype(np.int64)
        release = np.ceil(rel * scale - 1e-9).astype(np.int64)
    horizon = int(release.max(initial=0) + dur.max(axis=1, initial=0).sum())
    dl = np.asarray(sp.deadline, dtype=np.float64)
    deadline = np.where(
        np.isfinite(dl), np.floor(np.minimum(dl, horizon / scale + 1) * scale + 1e-9), horizon
    )
    due_f = np.asarray(sp.due, dtype=np.float64)
    has_due = np.isfinite(due_f) & (due_f * scale < horizon)
    due = np.where(has_due, np.floor(np.where(has_due, due_f, 0.0) * scale + 1e-9), -1).astype(np.int64)
    frac = np.where(has_due, due_f * scale - due, 0.0)
    due_slack = float(sp.w_tardiness * (sp.weight @ np.maximum(frac, 0.0)) / scale)
    return _Time(scale, exact, dur, release, deadline.astype(np.int64), due, due_slack, horizon)


@dataclass(frozen=True)
class Pin:
    r"""A task that keeps its GPUs and its time (a neighbourhood's pinned task).

    In integer time (`_ScheduleModel`) it holds them over :math:`[\lceil \sigma S \rceil, \lceil
    \sigma E \rceil)`, both ends rounded the same way so that pins that meet in hours meet in units
    (they never overlap), and when time is not exact every other task's duration gets one unit
    more: a task that ends by a pin's rounded start, :math:`S' + \lceil \sigma d \rceil + 1 \le
    \lceil \sigma S \rceil`, ends by its start in hours; one that starts at its rounded end or later
    starts after it. (Rounding a pin's start down instead could make two pins that meet overlap.)
    """

    start_h: float
    end_h: float
    gpus: tuple[int, ...]


def _units(tm: _Time, hours: float, up: bool) -> int:
    """`hours` in `tm`'s integer time, rounded up or down (a float error of 1e-9 relative is not
    taken for a fraction)."""
    x = hours * tm.scale
    tol = 1e-9 * max(1.0, abs(x))
    return math.ceil(x - tol) if up else math.floor(x + tol)


class _ScheduleModel:
    """The fleet model's placement plus time variables, intervals and the time terms. `pins`: tasks
    held fixed (by index); `makespan_floor`: hours the makespan is at least (tasks outside)."""

    def __init__(
        self, sp: ScheduleProgram, pins: dict[int, Pin] | None = None, makespan_floor: float = 0.0
    ) -> None:
        self.sp = sp
        self.mm = _Model(sp.fleet)
        self.m = self.mm.model
        tm = _scale_time(sp)
        self.pins = pins or {}
        self.makespan_floor = makespan_floor
        if self.pins or makespan_floor > 0:
            top = max([_units(tm, pin.end_h, up=True) for pin in self.pins.values()] + [0])
            top = max(top, _units(tm, makespan_floor, up=True))
            pad = 0 if tm.exact else 1  # (see Pin)
            free = np.ones(sp.n_tasks, dtype=bool)
            free[list(self.pins)] = False
            dur = np.where(free[:, None] & (tm.dur > 0), tm.dur + pad, tm.dur)
            tm = dataclasses.replace(tm, dur=dur, horizon=max(tm.horizon + int(pad * free.sum()), top))
        self.time = tm
        self.s: dict[int, Any] = {}
        self.e: dict[int, Any] = {}
        self.p: dict[int, Any] = {}
        self.placed: dict[int, Any] = {}
        self.relaxes = True
        self.extra: list[tuple[Any, float, int]] = []

    def build(self) -> int | None:
        """The whole model; returns a required task that fits no node, if any."""
        mm = self.mm
        homeless = mm.add_placement()
        if homeless is not None:
            return homeless
        f = self.sp.fleet
        cls = f.gpu_class[mm.xg_a]
        mm.prim = scale_resource(f.load_c[mm.xt_a, cls], np.array([f.capacity]), f.n_tasks)
        mm._note("share", mm.prim)
        mm.cap_prim = int(mm.prim.cap[0])
        self._tasks()
        self._gpus()
        self._nodes()
        self._precedences()
        self._time_terms()
        mm.add_symmetry()
        mm.add_objective(extra=self.extra)
        self.relaxes = mm.relaxes
        return None

    def _tasks(self) -> None:
        """S, P, E per task with a node; the placed literal of every task."""
        m, mm, tm = self.m, self.mm, self.time
        one = m.new_bool_var("one")
        m.add(one == 1)
        zero = m.new_bool_var("zero")
        m.add(zero == 0)
        has_node = {t for t, _ in mm.z}
        cls = self.sp.fleet.gpu_class
        by_task: dict[int, list[int]] = {}
        for i, t in enumerate(mm.xt):
            by_task.setdefault(t, []).append(i)
        for t in range(self.sp.n_tasks):
            if t not in has_node:
                self.placed[t] = zero
                continue
            self.placed[t] = mm.y[t].Not() if t in mm.y else one
            ids = by_task[t]
            if t in self.pins:
                self._pin(t, ids)
                continue
            d = [int(tm.dur[t, cls[mm.xg[i]]]) for i in ids]
            lo = int(tm.release[t])
            self.s[t] = m.new_int_var(lo, tm.horizon, f"S{t}")
            if len(set(d)) == 1:
                self.p[t] = d[0]
            else:
                pv = self.p[t] = m.new_int_var(0, max(d), f"P{t}")
                xs = [mm.x[i] for i in ids]
                if self.sp.fleet.gang[t] == 1:
                    m.add(pv == sum(di * x for di, x in zip(d, xs, strict=True)))
                else:
                    m.add_max_equality(pv, [di * x for di, x in zip(d, xs, strict=True)])
            self.e[t] = m.new_int_var(lo, tm.horizon, f"E{t}")
            m.add(self.e[t] == self.s[t] + self.p[t])
            if tm.deadline[t] < tm.horizon:
                m.add(self.e[t] <= int(tm.deadline[t])).only_enforce_if(self.placed[t])

    def _pin(self, t: int, ids: list[int]) -> None:
        """Task t on its pinned GPUs over its pinned time (constants)."""
        m, mm, pin = self.m, self.mm, self.pins[t]
        for i in ids:
            m.add(mm.x[i] == int(mm.xg[i] in pin.gpus))
        lo, hi = _units(self.time, pin.start_h, up=True), _units(self.time, pin.end_h, up=True)
        self.s[t] = m.new_int_var(lo, lo, f"S{t}")
        self.p[t] = hi - lo
        self.e[t] = m.new_int_var(hi, hi, f"E{t}")

    def _interval(self, t: int, lit: Any, name: str) -> Any:
        return self.m.new_optional_interval_var(self.s[t], self.p[t], self.e[t], lit, name)

    def _gpu_interval(self, i: int, g: int) -> Any:
        """Task x's interval on GPU g: of the fixed size the task takes there when it runs alone on
        it (one GPU: its duration on g's class), which propagates far better than the task's
        variable duration; a gang's GPUs all hold it for the gang's (slowest) duration."""
        mm = self.mm
        t = mm.xt[i]
        if self.sp.fleet.gang[t] == 1 and not isinstance(self.p[t], int):
            d = int(self.time.dur[t, self.sp.fleet.gpu_class[g]])
            return self.m.new_optional_fixed_size_interval_var(self.s[t], d, mm.x[i], f"I{t},{g}")
        return self._interval(t, mm.x[i], f"I{t},{g}")

    def _gpus(self) -> None:
        """Share and memory per GPU at every instant: NoOverlap when any two candidates clash."""
        f, mm, m = self.sp.fleet, self.mm, self.m
        share = mm.prim.load.tolist()
        cap = mm.cap_prim
        mem = scale_resource(f.gpu_mem[mm.xt_a], f.mem_cap, f.n_tasks)
        mm._note("mem", mem)
        need = mem.load.tolist()
        for g, ids in enumerate(mm.by_gpu):
            for i in ids:
                if share[i] > cap or need[i] > mem.cap[g]:
                    m.add(mm.x[i] == 0)
            ids = [i for i in ids if share[i] <= cap and need[i] <= mem.cap[g] and (share[i] or need[i])]
            if len(ids) < 2:
                continue
            ivs = [self._gpu_interval(i, g) for i in ids]
            sh = sorted(share[i] for i in ids)
            me = sorted(need[i] for i in ids)
            if sh[0] + sh[1] > cap or me[0] + me[1] > mem.cap[g]:
                m.add_no_overlap(ivs)
                continue
            if sum(sh) > cap:
                m.add_cumulative(ivs, [share[i] for i in ids], cap)
            if sum(me) > mem.cap[g]:
                m.add_cumulative(ivs, [need[i] for i in ids], int(mem.cap[g]))

    def _nodes(self) -> None:
        """CPU and host memory per node, spread groups per node, at every instant."""
        f, mm, m = self.sp.fleet, self.mm, self.m
        node_iv: dict[tuple[int, int], Any] = {}

        def iv(t: int, n: int) -> Any:
            if (t, n) not in node_iv:
                node_iv[t, n] = self._interval(t, mm.z[t, n], f"N{t},{n}")
            return node_iv[t, n]

        tasks = sorted({t for t, _ in mm.z})
        for name, use, have in (("cpu", f.cpu, f.node_cpu), ("ram", f.ram, f.node_ram)):
            finite = np.flatnonzero(np.isfinite(have))
            if not finite.size or not tasks:
                continue
            res = scale_resource(use[tasks], have[finite], f.n_tasks)
            mm._note(name, res)
            dem = dict(zip(tasks, res.load.tolist(), strict=True))
            for n, c in zip(finite.tolist(), res.cap.tolist(), strict=True):
                pairs = [(t, zv) for t, zv in mm.by_node[n] if dem[t] > 0]
                for t, zv in pairs:
                    if dem[t] > c:
                        m.add(zv == 0)
                pairs = [(t, zv) for t, zv in pairs if dem[t] <= c]
                if sum(dem[t] for t, _ in pairs) > c:
                    m.add_cumulative([iv(t, n) for t, _ in pairs], [dem[t] for t, _ in pairs], int(c))
        for n, pairs in enumerate(mm.by_node):
            groups: dict[int, list[int]] = {}
            for t, _ in pairs:
                if f.spread[t] >= 0:
                    groups.setdefault(int(f.spread[t]), []).append(t)
            for ts in groups.values():
                if len(ts) > 1:
                    m.add_no_overlap([iv(t, n) for t in ts])

    def _precedences(self) -> None:
        m = self.m
        for a, b in self.sp.pred.reshape(-1, 2).tolist():
            m.add_implication(self.placed[b], self.placed[a])
            if a in self.s and b in self.s:
                m.add(self.e[a] <= self.s[b]).only_enforce_if(self.placed[b])

    def _time_terms(self) -> None:
        sp, m, tm = self.sp, self.m, self.time
        h, sc = tm.horizon, tm.scale
        if sp.w_makespan > 0 and self.e:
            mk = self.mk = m.new_int_var(_units(tm, self.makespan_floor, up=False), h, "makespan")
            for t, e in self.e.items():
                m.add(mk >= e).only_enforce_if(self.placed[t])
            self.extra.append((mk, sp.w_makespan / sc, h))
        for t, e in self.e.items():
            w = float(sp.weight[t])
            if sp.w_completion > 0 and w > 0:
                c = e
                if t in self.mm.y:
                    c = m.new_int_var(0, h, f"C{t}")
                    m.add(c >= e).only_enforce_if(self.placed[t])
                self.extra.append((c, sp.w_completion * w / sc, h))
            if sp.w_tardiness > 0 and w > 0 and tm.due[t] >= 0:
                u = m.new_int_var(0, h, f"U{t}")
                m.add(u >= e - int(tm.due[t])).only_enforce_if(self.placed[t])
                self.extra.append((u, sp.w_tardiness * w / sc, h))

    def add_hint(self, assign: np.ndarray, start: np.ndarray) -> None:
        self.mm.add_hint(assign)
        for t, s in self.s.items():
            if t not in self.pins and assign[t, 0] >= 0 and np.isfinite(start[t]):
                self.m.add_hint(
                    s, min(self.time.horizon, max(0, math.ceil(start[t] * self.time.scale - 1e-9)))
                )

    def decode(self, solver: Any) -> tuple[np.ndarray, np.ndarray]:
        assign = self.mm.decode(solver)
        start = np.full(self.sp.n_tasks, np.nan)
        for t, s in self.s.items():
            if assign[t, 0] >= 0:
                start[t] = solver.value(s) / self.time.scale
        return assign, start


def solve_schedule_cpsat(
    sp: ScheduleProgram,
    *,
    time_limit: float,
    workers: int = 1,
    seed: int = 0,
    hint: tuple[np.ndarray, np.ndarray] | None = None,
) -> ScheduleResult:
    """Solve the scheduled program with CP-SAT for at most `time_limit` seconds.

    `hint` (assign [T, K], start [T]) seeds the search and is returned instead when it is feasible
    and better than what the solver found. Status OPTIMAL means the objective is within 1e-9
    (relative) of a proven bound.
    """
    from ortools.sat.python import cp_model

    started = time.monotonic()
    sm = _ScheduleModel(sp)
    tm = sm.time
    stats = sm.mm.stats
    cheap = lower_bound(sp)
    homeless = sm.build()
    note = f"time in units of 1/{tm.scale:g} h" + (
        ""
        if tm.exact
        else " (durations and releases rounded up, deadlines down: plans stay feasible, no bound)"
    )
    if homeless is not None:
        stats["cpsat_message"] = f"required task {homeless} fits on no node"
        res = ScheduleResult(
            sp.fleet.empty_assign(), np.full(sp.n_tasks, np.nan), Status.INFEASIBLE, None, None
        )
        return _with_hint(sp, hint, res, note, stats)
    mm = sm.mm
    proven_model = tm.exact and sm.relaxes
    note += f"; costs x{mm.cost_scale:g}" + ("" if mm.cost_exact else " (rounded)")
    note += "; loads " + ", ".join(f"{k} x{v:g}" for k, v in mm.scales.items())
    note += "" if mm.exact_loads else " (demands rounded up, capacities down)"
    if hint is not None and hint[0].shape == (sp.n_tasks, sp.fleet.max_gang):
        sm.add_hint(np.asarray(hint[0]), np.asarray(hint[1], dtype=np.float64))
    stats.update(
        {
            "cpsat_time_scale": tm.scale,
            "cpsat_time_exact": bool(tm.exact),
            "cpsat_horizon_units": tm.horizon,
            "cpsat_cost_scale": mm.cost_scale,
            "cpsat_loads_exact": bool(mm.exact_loads),
            "cpsat_loads_relax": bool(mm.relaxes),
        }
    )
    built = time.monotonic() - started
    left = max(0.05, time_limit - built)
    first = left if left < LNS_MIN_S else (1.0 - LNS_SHARE) * left
    solver = _solver(first, workers, seed, lns_only=False)
    code = solve_cpsat(solver, mm.model)
    stats.update({"cpsat_build_s": round(built, 4), "cpsat_status": solver.status_name(code)})
    solve_s = solver.wall_time
    cp_lb = solver.best_objective_bound
    late = started + time_limit - LNS_MIN_S / 2  # no part starts after this
    beside: _TimeIndexedBeside | None = None

    def bound_now() -> float:
        """The proven bound so far (user units): the cheap one, CP-SAT's when its model relaxes the
        program, the time-indexed one (as far as it has got)."""
        b = (mm.trivial_bound + cheap) * (1 - 1e-12)
        cp_bound = cp_lb / mm.cost_scale - mm.cost_slack - mm.bal_slack - tm.due_slack
        if proven_model and math.isfinite(cp_bound):
            b = max(b, cp_bound)
        ti = None if beside is None else beside.bound()
        return b if ti is None else max(b, ti)

    closed = False  # a bound meets the best schedule: nothing left to search
    best = _Best(math.inf, math.inf)
    if code == cp_model.FEASIBLE and not past(late):
        first_assign, first_start = sm.decode(solver)
        first_value = stats["cpsat_first_objective"] = objective(sp, first_assign, first_start)
        best = _Best(first_value, makespan(sp, first_assign, first_start))
        closed = _meets(first_value, bound_now())
        if closed:
            stats["cpsat_closed_by"] = "bounds"
        elif sp.w_makespan > 0 and sp.w_completion == 0 and sp.w_tardiness == 0:
            beside = _TimeIndexedBeside(sp, mm.trivial_bound, best, started + time_limit)
    if code == cp_model.FEASIBLE and not past(late) and not closed:
        lns = _solver(max(0.05, started + time_limit - time.monotonic()), workers, seed, lns_only=True)
        _hint_all(mm.model, solver)
        stopper = _tracker(sm, best, bound_now)
        if beside is None or beside.searching(lns):
            lns_code = solve_cpsat(lns, mm.model, stopper)
            stats["cpsat_lns_s"] = round(lns.wall_time, 4)
            stats["cpsat_lns_status"] = lns.status_name(lns_code)
            solve_s += lns.wall_time
            if (
                lns_code in (cp_model.OPTIMAL, cp_model.FEASIBLE)
                and lns.objective_value <= solver.objective_value
            ):
                solver, code = lns, lns_code
            cp_lb = max(cp_lb, lns.best_objective_bound)
        closed = stopper.proved or (beside is not None and beside.proved.is_set())
        if stopper.proved:
            stats["cpsat_closed_by"] = "bounds"
    if code in (cp_model.UNKNOWN, cp_model.FEASIBLE) and not past(late) and not closed:
        # no schedule yet (none to search around), or the neighbourhood search ended before its
        # time: the rest is the full search again, from the best schedule when there is one
        if code == cp_model.FEASIBLE:
            _hint_all(mm.model, solver)
        rest = _solver(max(0.05, started + time_limit - time.monotonic()), workers, seed, lns_only=False)
        if beside is None or beside.searching(rest):
            rest_code = solve_cpsat(rest, mm.model, _tracker(sm, best, bound_now))
            stats["cpsat_rest_s"] = round(rest.wall_time, 4)
            stats["cpsat_rest_status"] = rest.status_name(rest_code)
            solve_s += rest.wall_time
            if rest_code in (cp_model.OPTIMAL, cp_model.INFEASIBLE) or (
                rest_code == cp_model.FEASIBLE
                and (code != cp_model.FEASIBLE or rest.objective_value <= solver.objective_value)
            ):
                solver, code = rest, rest_code
            cp_lb = max(cp_lb, rest.best_objective_bound)
    if beside is not None:
        beside.finish(stats)
        if beside.proved.is_set():
            stats["cpsat_closed_by"] = "time-indexed bound"
    stats["cpsat_solve_s"] = round(solve_s, 4)
    raw = {
        cp_model.OPTIMAL: Status.OPTIMAL,
        cp_model.FEASIBLE: Status.FEASIBLE,
        cp_model.INFEASIBLE: Status.INFEASIBLE,
    }.get(code, Status.UNKNOWN)
    if raw is Status.INFEASIBLE and not proven_model:
        raw = Status.UNKNOWN  # the rounded model is stricter than the program: no proof
    bound = None if raw is Status.INFEASIBLE else bound_now()
    if not raw.has_solution:
        res = ScheduleResult(sp.fleet.empty_assign(), np.full(sp.n_tasks, np.nan), raw, None, bound)
        return _with_hint(sp, hint, res, note, stats)
    assign, start = sm.decode(solver)
    value = objective(sp, assign, start)
    bound = None if bound is None else min(bound, value)
    status = raw
    if status is Status.OPTIMAL and (bound is None or value - bound > 1e-9 * max(1.0, abs(value))):
        status = Status.FEASIBLE  # optimal for the rounded model only
    if status is Status.FEASIBLE and bound is not None and _meets(value, bound):
        status = Status.OPTIMAL  # proven by a bound from outside CP-SAT
    return _with_hint(sp, hint, ScheduleResult(assign, start, status, value, bound), note, stats)


def solve_schedule_window(
    sub: ScheduleProgram,
    pins: dict[int, Pin],
    makespan_floor: float,
    hint: tuple[np.ndarray, np.ndarray],
    *,
    time_limit: float,
    workers: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """One neighbourhood of a schedule (:func:`gpuplan.program.neighbourhood.sub_schedule`), its
    `pins` held, solved by one full CP-SAT search of at most `time_limit` seconds from `hint`:
    (assign, start, proven optimal for the model), pinned tasks at their own starts; None when no
    schedule was found. The caller checks it against the program (the model's rounding is
    conservative, so it holds unless float error says otherwise)."""
    from ortools.sat.python import cp_model

    started = time.monotonic()
    sm = _ScheduleModel(sub, pins, makespan_floor)
    if sm.build() is not None:
        return None
    sm.add_hint(np.asarray(hint[0]), np.asarray(hint[1], dtype=np.float64))
    solver = _solver(max(0.05, time_limit - (time.monotonic() - started)), workers, seed, lns_only=False)
    code = solve_cpsat(solver, sm.m)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    assign, start = sm.decode(solver)
    for t, pin in pins.items():
        start[t] = pin.start_h
    return assign, start, code == cp_model.OPTIMAL


@dataclass
class _Best:
    """The best schedule the searches have found so far: its objective (user units, exact) and
    makespan (hours); read by the time-indexed bound's thread."""

    value: float
    makespan: float


def _tracker(sm: _ScheduleModel, best: _Best, bound_now: Callable[[], float]) -> Any:
    """A CP-SAT solution callback that keeps `best` and stops the search at a schedule the bound so
    far proves (`proved` then True): a search has nothing left to find there (mk09 in the benchmark
    searched 27 s past a schedule its cheap bound proved). Each schedule is decoded and valued
    exactly (a few ms; a search finds tens)."""
    from ortools.sat.python import cp_model

    class Tracker(cp_model.CpSolverSolutionCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.proved = False

        def on_solution_callback(self) -> None:
            assign, start = sm.decode(self)
            value = objective(sm.sp, assign, start)
            best.makespan = min(best.makespan, makespan(sm.sp, assign, start))
            best.value = min(best.value, value)
            if _meets(value, bound_now()):
                self.proved = True
                self.stop_search()

    return Tracker()


def _meets(value: float, bound: float) -> bool:
    """Is `value` proven optimal by `bound` (within 1e-9, relative)?"""
    return math.isfinite(bound) and value - bound <= 1e-9 * max(1.0, abs(value))


class _TimeIndexedBeside:
    """The time-indexed bound (:mod:`gpuplan.bounds.time_indexed`) in a thread beside CP-SAT's
    searches (SCIP releases the GIL), asking up to the best makespan the searches have found
    (`best`, kept by `_tracker`), until `end_at`. When its bound proves the best schedule, it stops
    the search running and asks nothing more, and `proved` is set; `finish` stops it and gives its
    bound on the objective (user units)."""

    def __init__(self, sp: ScheduleProgram, placement_bound: float, best: _Best, end_at: float) -> None:
        from gpuplan.bounds.time_indexed import TimeIndexedBound

        self.sp, self.placement_bound, self.best, self.end_at = sp, placement_bound, best, end_at
        self.stop = threading.Event()
        self.proved = threading.Event()
        self.result: TimeIndexedBound | None = None
        self._makespan: float | None = None  # the bound so far (hours)
        self._lock = threading.Lock()
        self._search: Any = None
        self._thread = threading.Thread(target=in_context(self._run), name="gpuplan-ti", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from gpuplan.bounds.time_indexed import time_indexed_makespan

        self.result = time_indexed_makespan(
            self.sp,
            lambda: self.best.makespan,
            self.end_at,
            stop=self.stop,
            on_bound=self._raised,
            paced=True,
        )
        if self.result.makespan is not None:
            self._raised(self.result.makespan)

    def _raised(self, makespan: float) -> None:
        """A question answered "no": the bound is `makespan`; stop everything if it proves the best."""
        self._makespan = max(makespan, self._makespan or 0.0)
        b = self.bound()
        if b is not None and _meets(self.best.value, b):
            with self._lock:
                self.proved.set()
                self.stop.set()
                if self._search is not None:
                    self._search.stop_search()

    def bound(self) -> float | None:
        """The proven bound on the objective: the placement bound plus the weighted makespan bound."""
        if self._makespan is None:
            return None
        return (self.placement_bound + self.sp.w_makespan * self._makespan) * (1 - 1e-12)

    def searching(self, solver: Any) -> bool:
        """Take `solver` as the search to stop on a proof; False when the proof is already in."""
        with self._lock:
            self._search = solver
            return not self.proved.is_set()

    def finish(self, stats: dict[str, bool | int | float | str]) -> float | None:
        """Stop the bound, wait for it, record it in `stats`; its bound (None when it has none)."""
        self.stop.set()
        self._thread.join()
        res = self.result
        if res is not None:
            stats["cpsat_ti_status"] = res.status
            stats["cpsat_ti_s"] = round(res.seconds, 4)
            stats["cpsat_ti_variables"] = res.variables
            stats["cpsat_ti_questions"] = res.questions
            if res.makespan is not None:
                stats["cpsat_ti_makespan"] = res.makespan
        return self.bound()


def _solver(limit_s: float, workers: int, seed: int, *, lns_only: bool) -> Any:
    """A CP-SAT solver for `limit_s` seconds; `lns_only`: every worker searches neighbourhoods of the
    best schedule (no worker proves anything)."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, limit_s)
    solver.parameters.num_workers = max(1, int(workers))
    solver.parameters.random_seed = int(seed)
    solver.parameters.use_lns_only = lns_only
    return solver


def _hint_all(model: Any, solver: Any) -> None:
    """Replace `model`'s hint by `solver`'s solution, every variable (a complete hint, taken as the
    first solution as it is)."""
    model.clear_hints()
    for i in range(len(model.proto.variables)):
        var = model.get_int_var_from_proto_index(i)
        model.add_hint(var, solver.value(var))


def _with_hint(
    sp: ScheduleProgram,
    hint: tuple[np.ndarray, np.ndarray] | None,
    res: ScheduleResult,
    note: str,
    stats: dict[str, bool | int | float | str],
) -> ScheduleResult:
    """`res` with its note and stats, or the hint instead when it is feasible and better."""
    res.note, res.stats = note, stats
    if hint is None:
        return res
    assign, start = np.asarray(hint[0], dtype=np.int64), np.asarray(hint[1], dtype=np.float64)
    if assign.shape != (sp.n_tasks, sp.fleet.max_gang) or violations(sp, assign, start):
        return res
    h_obj = objective(sp, assign, start)
    if res.objective is not None and h_obj >= res.objective:
        return res
    stats["cpsat_returned_hint"] = True
    bound = None if res.bound is None else min(res.bound, h_obj)
    status = Status.FEASIBLE
    if bound is not None and h_obj - bound <= 1e-9 * max(1.0, abs(h_obj)):
        status = Status.OPTIMAL
    return ScheduleResult(assign, start, status, h_obj, bound, note, stats)


__all__ = ["Pin", "ScheduleResult", "solve_schedule_cpsat", "solve_schedule_window"]

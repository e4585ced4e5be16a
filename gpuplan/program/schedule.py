r"""The scheduled program: a fleet program whose tasks also get start times.

A problem is *scheduled* when a task uses ``release_h``, ``deadline_h``, ``due_h`` or ``after``, or
the objective has a time criterion. Placement rules are the fleet program's (eligibility, gangs on
one node, share and memory side by side, node CPU and host memory, spread groups), but they hold at
every instant rather than for the whole horizon.

Formulation
-----------
Each placed task t gets GPUs (the fleet program's :math:`x_{tg}`) and a start :math:`S_t`; it runs
without preemption for :math:`p_t = \max_{g: x_{tg}=1} d_{t,\mathrm{class}(g)}` hours (the slowest
of its gang's GPUs, data transfer included) and ends at :math:`E_t = S_t + p_t`. A gang starts and
ends together on all its GPUs.

.. math::

    S_t \ge r_t, \qquad E_t \le \bar d_t \;(\text{deadline, and the horizon } H),
    \qquad E_a \le S_b \;\; \forall (a, b) \in P \;(\text{b is after a}),

    \sum_{t \ni g,\, S_t \le \tau < E_t} s_t \le 1, \qquad
    \sum_{t \ni g,\, S_t \le \tau < E_t} m_t \le M_g \qquad \forall g, \tau,

    \sum_{t \text{ on } n,\, S_t \le \tau < E_t} c_t \le C_n, \qquad
    \sum_{t \text{ on } n,\, S_t \le \tau < E_t} r_t \le R_n \qquad \forall n, \tau,

and two tasks of one spread group never run on one node at the same instant (they may use one node
one after the other). A task is placed only when each of its predecessors is placed.

Objective, in user units: the fleet objective of the placement (cost, energy, ... and drop
penalties) plus

.. math::

    \lambda_{\mathrm{mk}} \max_t E_t + \lambda_{\mathrm{ct}} \sum_t w_t E_t
    + \lambda_{\mathrm{td}} \sum_t w_t \max(0, E_t - \delta_t)

over placed tasks (makespan, weighted completion time, weighted tardiness against due times
:math:`\delta_t`).

Evaluation
----------
:func:`violations` checks each rule with one event sweep per resource: every running task adds
its demand at :math:`S_t` and removes it at :math:`E_t` (ends sorted before starts at one
instant, so intervals are half-open), the running sum is compared with the capacity after each
event: :math:`O(n \log n)` for n placed GPU slots, vectorised over all GPUs (nodes, spread
groups) at once. Capacities hold within the fleet program's relative tolerance :math:`10^{-9}`,
and times within :math:`10^{-9} \max(1, |\tau|)` hours (an end that float arithmetic puts an ulp
past the next start does not count as an overlap). One start per task makes a gang start and end
together on all its GPUs, and one interval per task makes every task non-preemptive.

Lower bound on the time terms
-----------------------------
:func:`lower_bound`. Let :math:`\underline p_t = \min_{c \text{ eligible, usable}} d_{tc}` (a
gang runs as long as its slowest GPU, so at least this), :math:`R^*` the required tasks and their
ancestors in :math:`P` (a placed task's predecessors are placed), and the heads
:math:`h_t = \max(r_t, \max_{(a,t) \in P} h_a + \underline p_a)`, so :math:`S_t \ge h_t` and
:math:`E_t \ge e_t = h_t + \underline p_t`. Then for every feasible plan

.. math::

    \max_t E_t \ge \max_{t \in R^*} e_t, \qquad
    \max_t E_t \ge \min_{t \in R^*_\rho} h_t
        + \frac{\sum_{t \in R^*_\rho} \rho_t \underline p_t}{\sum \text{capacity of } \rho}
    \quad (\rho = k_t s_t \text{ on usable GPUs}, k_t m_t \text{ on their memory},
    c_t, r_t \text{ on finite nodes}),

    \sum_t w_t E_t \ge \sum_{t \in R^*} w_t e_t, \qquad
    \sum_t w_t \max(0, E_t - \delta_t) \ge \sum_{t \in R^*} w_t \max(0, e_t - \delta_t),

where :math:`R^*_\rho` are the tasks of :math:`R^*` with a positive demand :math:`\rho_t` (the
area argument: they all run within :math:`[\min h, \max E)` and the resource holds at most its
capacity at each instant). Tasks outside :math:`R^*` may be left out and count 0.

Machine sets with heads and tails (:func:`makespan_bound`). The tails
:math:`q_t = \max_{(t,b) \in P,\, b \in R^*} \underline p_b + q_b` (0 without such successors) give
:math:`\max E \ge E_t + q_t`: each placed successor starts after t ends. For a set S of GPU classes
with :math:`m_S` usable GPUs, let :math:`J_S` be the tasks of :math:`R^*` with :math:`\rho_t = k_t
s_t > 0` whose eligible usable classes all lie in S (they run on S's GPUs only). Any nonempty
:math:`J \subseteq J_S` runs within :math:`[\min_J h, \max E - \min_J q)` and S's GPUs hold at most
share :math:`m_S` at each instant, so

.. math::

    \max_t E_t \ge \min_{t \in J} h_t + \min_{t \in J} q_t + \frac{\sum_{t \in J} \rho_t
        \underline p_t}{m_S}.

It is tried on :math:`J = \{t \in J_S : h_t \ge a\} \cap \{\text{the } i \text{ largest tails}\}`
for up to ``_THRESHOLDS`` heads a and every i (any J is valid, so trying fewer only weakens it),
with S each task's set of eligible usable classes, each class, the union of two such sets that
meet, and all classes (at most ``_SETS`` sets; the work is :math:`O(|S| \cdot a \cdot T)`).

Exclusive tasks (:math:`s_t > 1/2`: no two share a GPU at an instant) admit the parallel-machine
bound (Carlier's): take J as above with gang copies, :math:`n_J = \sum_J k_t \ge m_S`; drop every
other task and let each task of J run for its actual :math:`p_t \ge \underline p_t` on any GPU of S
(identical machines). While a GPU of S is empty and another runs two copies, moving the last copy
there keeps the relaxed schedule feasible; then each GPU's first copies are distinct, as are its
last, so the idle time of S's GPUs in :math:`[0, \max E)` is at least the sum of the :math:`m_S`
smallest heads :math:`H_J` and of the :math:`m_S` smallest tails :math:`Q_J` (copies counted k times):

.. math::

    m_S \max_t E_t \ge H_J + \sum_{t \in J} k_t \underline p_t + Q_J,

tried on the head-threshold sets :math:`\{t \in J_S : h_t \ge a\}` and the tail-threshold sets.

Integral time. When one :math:`\sigma = 10^j` (:math:`j \le 6`) makes every eligible duration and
every release integral (:func:`time_grid`), shifting each task left until it meets its release, a
predecessor's end or another task's end keeps a plan feasible (what runs just before its start
runs at its start too) and lowers no end; so every plan's makespan is at least that of a plan
whose times are multiples of :math:`1/\sigma`, and the bound is rounded up to such a multiple.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.program.fleet import NONE, FleetCompiled, FleetProgram

_TOL = 1e-9  # relative capacity tolerance, as FleetProgram.violations
_TIME_TOL = 1e-9  # times agree within this times max(1, |t|) hours

#: Most head (and tail) thresholds the machine-set bound tries per set (module docstring).
_THRESHOLDS = 32
#: Most machine sets the machine-set bound tries (single classes and task sets first).
_SETS = 256
#: Most (set, threshold, task) cells the machine-set bound evaluates before it stops adding sets.
_SET_WORK = 30_000_000


@dataclass(frozen=True, eq=False)
class ScheduleProgram:
    """Index-space arrays of the scheduled formulation (module docstring). Times in hours."""

    fleet: FleetProgram  # placement rules and placement objective; side by side (fleet.horizon False)
    duration_c: np.ndarray  # float64 [T, C]: hours on one GPU of each class, NaN where ineligible
    release: np.ndarray  # float64 [T]: earliest start, >= 0
    deadline: np.ndarray  # float64 [T]: latest end (the horizon folded in), inf when none
    due: np.ndarray  # float64 [T]: soft due time for tardiness, inf when none
    weight: np.ndarray  # float64 [T]: weight in completion time and tardiness, >= 0
    pred: np.ndarray  # int64 [E, 2]: rows (a, b): a ends before b starts (a DAG)
    w_makespan: float = 0.0
    w_completion: float = 0.0
    w_tardiness: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value)
                value.setflags(write=False)
                object.__setattr__(self, f.name, value)

    @property
    def n_tasks(self) -> int:
        return self.fleet.n_tasks

    def replace(self, **changes: Any) -> ScheduleProgram:
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def placement_rules(self) -> FleetProgram:
        """The fleet program without capacities or spread groups: its `violations` checks only
        how tasks are placed (gang size, eligibility, one node, one type, required tasks placed)."""
        f = self.fleet
        return f.replace(
            mem_cap=np.full(f.n_gpus, np.inf),
            node_cpu=np.full(f.n_nodes, np.inf),
            node_ram=np.full(f.n_nodes, np.inf),
            spread=np.full(f.n_tasks, NONE, dtype=np.int64),
            capacity=np.inf,
        )


def durations(sp: ScheduleProgram, assign: np.ndarray) -> np.ndarray:
    """float64 [T]: :math:`p_t` = the slowest of the task's GPUs' class durations; NaN when left out
    (or when a GPU is ineligible, which `violations` reports)."""
    t_n = sp.n_tasks
    used = assign >= 0
    if not used.any():  # nothing placed (on a fleet without GPUs, nothing can be)
        return np.full(t_n, np.nan)
    cls = sp.fleet.gpu_class[np.maximum(assign, 0)]
    d = np.where(used, sp.duration_c[np.arange(t_n)[:, None], cls], -np.inf)
    p = d.max(axis=1, initial=-np.inf)
    return np.where(used.any(axis=1), p, np.nan)


def ends(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> np.ndarray:
    """float64 [T]: :math:`E_t = S_t + p_t`; NaN when left out."""
    return np.asarray(start, dtype=np.float64) + durations(sp, assign)


def makespan(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> float:
    """The latest end of the placed tasks (hours; 0 when none is placed)."""
    placed = (assign >= 0).any(axis=1)
    return float(ends(sp, assign, start)[placed].max(initial=0.0))


def objective(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> float:
    """The fleet objective of the placement plus the weighted time terms (user units)."""
    total = sp.fleet.objective(assign)
    placed = (assign >= 0).any(axis=1)
    e = ends(sp, assign, start)[placed]
    w = sp.weight[placed]
    if sp.w_makespan:
        total += sp.w_makespan * makespan(sp, assign, start)
    if sp.w_completion:
        total += sp.w_completion * float(w @ e)
    if sp.w_tardiness:
        total += sp.w_tardiness * float(w @ np.maximum(0.0, e - sp.due[placed]))
    return float(total)


def topological_order(n: int, pred: np.ndarray) -> np.ndarray:
    """int64 [n]: the tasks with every predecessor before its successors (Kahn, smallest index
    first among the ready). Raises ValueError when `pred` has a cycle."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = np.zeros(n, dtype=np.int64)
    for a, b in np.asarray(pred, dtype=np.int64).reshape(-1, 2).tolist():
        succ[a].append(b)
        indeg[b] += 1
    ready = np.flatnonzero(indeg == 0).tolist()
    ready.reverse()
    out: list[int] = []
    while ready:
        t = ready.pop()
        out.append(t)
        for b in succ[t]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    if len(out) != n:
        raise ValueError("precedences form a cycle")
    return np.array(out, dtype=np.int64)


def fastest(sp: ScheduleProgram) -> np.ndarray:
    """float64 [T]: :math:`\\underline p_t`, the shortest duration over eligible classes holding a
    usable GPU (inf when the task has none)."""
    ok = sp.fleet.eligible_c & (sp.fleet.usable_per_class() > 0)[None, :]
    d = np.where(ok, sp.duration_c, np.inf)
    return d.min(axis=1, initial=np.inf)


def heads(sp: ScheduleProgram, p_min: np.ndarray) -> np.ndarray:
    """float64 [T]: :math:`h_t`, the earliest start the releases and precedences allow."""
    h = np.array(sp.release, dtype=np.float64)
    by_b: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        by_b[b].append(a)
    for t in topological_order(sp.n_tasks, sp.pred).tolist():
        for a in by_b[t]:
            h[t] = max(h[t], h[a] + p_min[a])
    return h


def late_chain(sp: ScheduleProgram) -> list[int]:
    """A chain that proves the program infeasible: a task that must be placed whose earliest end
    (its head plus its fastest duration) passes its latest end, with the predecessors that set its
    head, first to last; [] when there is none. Each link is the predecessor whose earliest end
    equals the next task's head."""
    p_min = fastest(sp)
    h = heads(sp, p_min)
    late = must_place(sp) & (h + p_min > sp.deadline * (1 + 1e-9) + 1e-9)
    if not late.any():
        return []
    by_b: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        by_b[b].append(a)
    chain = [int(np.flatnonzero(late)[0])]
    while True:
        t = chain[-1]
        if h[t] <= sp.release[t] or not by_b[t]:
            break
        chain.append(max(by_b[t], key=lambda a: h[a] + p_min[a]))
    return chain[::-1]


def must_place(sp: ScheduleProgram) -> np.ndarray:
    """bool [T]: :math:`R^*`, the required tasks and every ancestor of one."""
    need = ~np.asarray(sp.fleet.optional, dtype=bool)
    need = need.copy()
    by_b: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        by_b[b].append(a)
    for t in topological_order(sp.n_tasks, sp.pred)[::-1].tolist():
        if need[t]:
            for a in by_b[t]:
                need[a] = True
    return need


def tails(sp: ScheduleProgram, p_min: np.ndarray, need: np.ndarray) -> np.ndarray:
    """float64 [T]: :math:`q_t`, the longest chain of fastest durations from t's end through
    successors that must be placed (module docstring); 0 for a task without one."""
    q = np.zeros(sp.n_tasks)
    by_a: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        if need[b]:
            by_a[a].append(b)
    for t in topological_order(sp.n_tasks, sp.pred)[::-1].tolist():
        for b in by_a[t]:
            q[t] = max(q[t], p_min[b] + q[b])
    return q


def time_grid(sp: ScheduleProgram) -> float | None:
    """The smallest :math:`\\sigma = 10^j` (j <= 6) that makes every eligible duration and every
    release integral (up to float noise), or None: then plans' times need not lie on a grid."""
    d = sp.duration_c[sp.fleet.eligible_c & np.isfinite(sp.duration_c)]
    v = np.abs(np.r_[d, sp.release])
    for j in range(7):
        x = v * 10.0**j
        if np.all(np.abs(x - np.round(x)) <= 1e-9 * np.maximum(1.0, x)):
            return 10.0**j
    return None


def _head_rows(h: np.ndarray) -> np.ndarray:
    """Up to `_THRESHOLDS` head thresholds: distinct values, evenly picked, the smallest always."""
    u = np.unique(h)
    if u.size > _THRESHOLDS:
        u = u[np.unique(np.linspace(0, u.size - 1, _THRESHOLDS).round().astype(np.int64))]
    return u


def _energy(h: np.ndarray, q: np.ndarray, work: np.ndarray, cap: float) -> float:
    """max over J of min_J h + min_J q + sum_J work / cap, J = {h >= a} cut to the i largest tails
    (module docstring), vectorised over the thresholds a and every i."""
    order = np.argsort(-q, kind="stable")
    h, q, work = h[order], q[order], work[order]
    a = _head_rows(h)
    member = h[None, :] >= a[:, None]  # [A, n]: task i in J_a
    cum = np.cumsum(member * work[None, :], axis=1)
    val = np.where(member, a[:, None] + q[None, :] + cum / cap, -np.inf)
    return float(val.max(initial=-np.inf))


def _smallest(x: np.ndarray, m: int) -> float:
    return float(np.partition(x, m - 1)[:m].sum()) if m < x.size else float(x.sum())


def _parallel(h: np.ndarray, q: np.ndarray, p: np.ndarray, k: np.ndarray, m: int) -> float:
    """Carlier's parallel-machine bound on exclusive tasks (module docstring), over head- and
    tail-threshold sets; k copies of a gang. -inf when no set holds m copies."""
    hh, qq, pp = np.repeat(h, k), np.repeat(q, k), np.repeat(p, k)
    best = -np.inf
    for key in (hh, qq):
        for a in _head_rows(key):
            sel = key >= a
            if sel.sum() < m:
                continue
            total = _smallest(hh[sel], m) + pp[sel].sum() + _smallest(qq[sel], m)
            best = max(best, total / m)
    return best


def _machine_sets(ok: np.ndarray) -> list[np.ndarray]:
    """bool [C] class sets for the machine-set bound: each distinct row of `ok` (a task's eligible
    usable GPU classes), each class of some row, unions of two rows that meet, and all of them."""
    rows = np.unique(ok[ok.any(axis=1)], axis=0)
    if not rows.size:
        return []
    sets = [np.eye(ok.shape[1], dtype=bool)[c] for c in np.flatnonzero(rows.any(axis=0))]
    sets += list(rows)
    sets.append(rows.any(axis=0))
    for i in range(len(rows)):
        if len(sets) >= 4 * _SETS:
            break
        meet = (rows[i + 1 :] & rows[i]).any(axis=1)
        sets += list(rows[i + 1 :][meet] | rows[i])
    uniq = np.unique(np.array(sets), axis=0)
    key: dict[bytes, int] = {}
    for i, r in enumerate(sets):
        key.setdefault(r.tobytes(), i)  # keep the order: single classes and task rows first
    order = sorted(range(len(uniq)), key=lambda j: key.get(uniq[j].tobytes(), 0))
    return [uniq[j] for j in order[:_SETS]]


def makespan_bound(sp: ScheduleProgram) -> float:
    """A proven lower bound on the makespan of every feasible plan (module docstring): the critical
    path, the whole-fleet area bounds, the machine-set bounds with heads and tails, rounded up to
    the time grid; 0 when no task must be placed, inf when one has no eligible usable GPU."""
    p_min = fastest(sp)
    need = must_place(sp)
    if not need.any():
        return 0.0
    if not np.isfinite(p_min[need]).all():
        return np.inf
    return _makespan(sp, p_min, heads(sp, p_min), need)


def _makespan(sp: ScheduleProgram, p_min: np.ndarray, h: np.ndarray, need: np.ndarray) -> float:
    """`makespan_bound` given the fastest durations, the heads and the tasks that must be placed
    (some, each with an eligible usable GPU)."""
    f = sp.fleet
    e = h + p_min
    makespan = float(e[need].max())
    usable = f.gpu_ok & ~f.host
    elig_any = f.eligible_c[need].any(axis=0)[f.gpu_class] & usable  # per class: never [T, G]
    k = f.gang * ~f.cpu_only
    areas = [
        (k * f.share, float(elig_any.sum())),
        (k * f.gpu_mem, float(f.mem_cap[elig_any].sum())),
        (f.cpu, float(f.node_cpu.sum())),
        (f.ram, float(f.node_ram.sum())),
    ]
    for rho, cap in areas:
        busy = need & (rho > 0)
        if busy.any() and 0 < cap < np.inf:
            makespan = max(makespan, float(h[busy].min() + (rho[busy] * p_min[busy]).sum() / cap))
    makespan = max(makespan, _set_bound(sp, p_min, h, need))
    grid = time_grid(sp)
    if grid is not None:
        makespan = math.ceil(makespan * grid - 1e-6) / grid
    return makespan


def _set_bound(sp: ScheduleProgram, p_min: np.ndarray, h: np.ndarray, need: np.ndarray) -> float:
    """The machine-set bounds (module docstring), within `_SET_WORK` cells."""
    f = sp.fleet
    # Host slots count too: a set's capacity may only be overstated (they take no GPU share anyway).
    gpus = f.usable_per_class()
    rho = f.gang * f.share * ~f.cpu_only
    tasks = np.flatnonzero(need & (rho > 0))
    if not tasks.size:
        return 0.0
    ok = f.eligible_c[tasks] & (gpus > 0)[None, :]
    q = tails(sp, p_min, need)
    best, work = 0.0, 0
    for s in _machine_sets(ok):
        m = int(gpus[s].sum())
        inside = ~(ok & ~s).any(axis=1)
        if m <= 0 or not inside.any():
            continue
        t = tasks[inside]
        work += (2 * _THRESHOLDS + 1) * t.size
        if work > _SET_WORK:
            break
        best = max(best, _energy(h[t], q[t], rho[t] * p_min[t], float(m)))
        excl = f.share[t] > 0.5 + 1e-8
        if excl.any():
            x = t[excl]
            best = max(best, _parallel(h[x], q[x], p_min[x], f.gang[x].astype(np.int64), m))
    return best


def lower_bound(sp: ScheduleProgram) -> float:
    """A proven lower bound on the weighted time terms of every feasible plan (module docstring);
    inf when a task that must be placed has no eligible usable GPU (then no plan exists)."""
    p_min = fastest(sp)
    need = must_place(sp)
    if not np.isfinite(p_min[need]).all():
        return np.inf  # a task that must be placed has no eligible usable GPU: no plan exists
    if not need.any():
        return 0.0
    h = heads(sp, p_min)
    e = h + p_min
    makespan = _makespan(sp, p_min, h, need) if sp.w_makespan else 0.0
    w = sp.weight[need]
    total = sp.w_makespan * makespan
    total += sp.w_completion * float(w @ e[need])
    total += sp.w_tardiness * float(w @ np.maximum(0.0, e[need] - sp.due[need]))
    return float(total)


def peak_levels(key: np.ndarray, s: np.ndarray, e: np.ndarray, demand: np.ndarray, n_keys: int) -> np.ndarray:
    """float [n_keys]: the largest running demand on each key at any instant, for items [s, e) with
    `demand` on `key`; one sort of the 2n events by (key, time, end before start), then a cumulative
    sum taken from each key's first event. Ends are pulled in by the time tolerance, so items that
    touch within float noise do not overlap."""
    out = np.zeros(n_keys)
    e = e - _TIME_TOL * np.maximum(1.0, np.abs(e))
    keep = (e > s) & (demand > 0) & np.isfinite(s) & np.isfinite(e)
    key, s, e, demand = key[keep], s[keep], e[keep], demand[keep]
    if not key.size:
        return out
    n = key.size
    k2 = np.concatenate([key, key])
    tm = np.concatenate([s, e])
    kind = np.repeat(np.array([1, 0], dtype=np.int8), n)  # ends (0) first
    delta = np.concatenate([demand, -demand])
    order = np.lexsort((kind, tm, k2))
    k2, delta = k2[order], delta[order]
    cs = np.cumsum(delta)
    first = np.empty(2 * n, dtype=bool)
    first[0] = True
    first[1:] = k2[1:] != k2[:-1]
    idx = np.maximum.accumulate(np.where(first, np.arange(2 * n), 0))
    np.maximum.at(out, k2, cs - (cs[idx] - delta[idx]))
    return out


def _overloaded(
    key: np.ndarray, s: np.ndarray, e: np.ndarray, demand: np.ndarray, cap: np.ndarray
) -> np.ndarray:
    """Keys whose running demand exceeds `cap[key]` at some instant (`peak_levels`)."""
    peak = peak_levels(key, s, e, demand, cap.size)
    return np.flatnonzero(peak > cap * (1 + _TOL) + _TOL)


def violations(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> list[str]:
    """Every broken rule of a schedule (empty when feasible); index-space messages.

    Placement rules without capacities (gang size, eligibility, one node, one type, each task
    once, required tasks placed) come from `FleetProgram.violations`; capacities and spread groups
    are checked at every instant by event sweeps; then starts, releases, deadlines, precedences.
    """
    f = sp.fleet
    t_n, g_n, n_n = f.n_tasks, f.n_gpus, f.n_nodes
    start = np.asarray(start, dtype=np.float64)
    if f.horizon:
        return ["the fleet program counts GPU time within a horizon: a schedule needs it side by side"]
    if start.shape != (t_n,):
        return [f"start shape {start.shape}, expected {(t_n,)}"]
    out = sp.placement_rules.violations(assign)
    if assign.shape != (t_n, f.max_gang):
        return out
    used = assign >= 0
    placed = used.any(axis=1)
    out.extend(
        f"task {t}: placed without a start time" for t in np.flatnonzero(placed & ~np.isfinite(start))[:20]
    )
    out.extend(
        f"task {t}: left out but given a start" for t in np.flatnonzero(~placed & ~np.isnan(start))[:20]
    )
    p = durations(sp, assign)
    end = start + p
    tol = _TIME_TOL * np.maximum(1.0, np.abs(np.nan_to_num(end, nan=0.0, posinf=0.0, neginf=0.0)))
    early = placed & (start < sp.release - tol)
    out.extend(f"task {t}: starts before its release" for t in np.flatnonzero(early)[:20])
    late = placed & (end > sp.deadline + tol)
    out.extend(f"task {t}: ends after its deadline" for t in np.flatnonzero(late)[:20])
    for a, b in sp.pred.reshape(-1, 2).tolist():
        if placed[b] and not placed[a]:
            out.append(f"task {b}: placed though its predecessor {a} is left out")
        elif placed[b] and placed[a] and end[a] > start[b] + tol[a]:
            out.append(f"task {b}: starts before its predecessor {a} ends")
    # GPU share and memory, per GPU at every instant.
    t_idx, k_idx = np.nonzero(used)
    g = assign[t_idx, k_idx]
    s_g, e_g = start[t_idx], end[t_idx]
    bad = _overloaded(g, s_g, e_g, f.share[t_idx], np.ones(g_n))
    out.extend(f"GPU {x}: shares over 1 at some instant" for x in bad[:5])
    bad = _overloaded(g, s_g, e_g, f.gpu_mem[t_idx], f.mem_cap)
    out.extend(f"GPU {x}: memory over capacity at some instant" for x in bad[:5])
    # Node CPU and host memory, and spread groups per node.
    rows = np.flatnonzero(placed & used[:, 0])
    node = f.gpu_node[assign[rows, 0]]
    s_t, e_t = start[rows], end[rows]
    bad = _overloaded(node, s_t, e_t, f.cpu[rows], f.node_cpu)
    out.extend(f"node {x}: CPU over capacity at some instant" for x in bad[:5])
    bad = _overloaded(node, s_t, e_t, f.ram[rows], f.node_ram)
    out.extend(f"node {x}: host memory over capacity at some instant" for x in bad[:5])
    grp = f.spread[rows]
    sp_rows = grp >= 0
    if sp_rows.any():
        key = grp[sp_rows] * n_n + node[sp_rows]
        cap = np.ones(int(key.max()) + 1)
        bad = _overloaded(key, s_t[sp_rows], e_t[sp_rows], np.ones(int(sp_rows.sum())), cap)
        out.extend(f"spread group {x // n_n}: two tasks on node {x % n_n} at once" for x in bad[:5])
    return out


def schedule_program(c: FleetCompiled) -> ScheduleProgram:
    """The scheduled program of a compiled scheduled problem (`FleetCompiled.times` set)."""
    if c.times is None:
        raise ValueError("not a scheduled problem: its program has no time arrays")
    tm = c.times
    return ScheduleProgram(
        fleet=c.program,
        duration_c=c.duration,
        release=tm.release,
        deadline=tm.deadline,
        due=tm.due,
        weight=tm.weight,
        pred=tm.pred,
        w_makespan=tm.w_makespan,
        w_completion=tm.w_completion,
        w_tardiness=tm.w_tardiness,
    )


__all__ = [
    "ScheduleProgram",
    "durations",
    "ends",
    "fastest",
    "heads",
    "late_chain",
    "lower_bound",
    "makespan",
    "makespan_bound",
    "must_place",
    "objective",
    "peak_levels",
    "schedule_program",
    "tails",
    "time_grid",
    "topological_order",
    "violations",
]

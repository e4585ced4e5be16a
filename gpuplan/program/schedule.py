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
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.program.fleet import NONE, FleetCompiled, FleetProgram

_TOL = 1e-9  # relative capacity tolerance, as FleetProgram.violations
_TIME_TOL = 1e-9  # times agree within this times max(1, |t|) hours


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


def objective(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> float:
    """The fleet objective of the placement plus the weighted time terms (user units)."""
    total = sp.fleet.objective(assign)
    placed = (assign >= 0).any(axis=1)
    e = ends(sp, assign, start)[placed]
    w = sp.weight[placed]
    if sp.w_makespan:
        total += sp.w_makespan * float(e.max(initial=0.0))
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


def lower_bound(sp: ScheduleProgram) -> float:
    """A proven lower bound on the weighted time terms of every feasible plan (module docstring);
    inf when a task that must be placed has no eligible usable GPU (then no plan exists)."""
    f = sp.fleet
    p_min = fastest(sp)
    h = heads(sp, p_min)
    e = h + p_min
    need = must_place(sp)
    if not np.isfinite(p_min[need]).all():
        return np.inf  # a task that must be placed has no eligible usable GPU: no plan exists
    if not need.any():
        return 0.0
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
    "must_place",
    "objective",
    "peak_levels",
    "schedule_program",
    "topological_order",
    "violations",
]

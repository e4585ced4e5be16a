r"""The one program of every Problem: the full model (gangs, nodes, sharing, spread, data, migration,
objectives), built from the specs by `compile_fleet`. A program that is a GAP is recognised by
:func:`gpuplan.program.gap_view.gap_like` and handed to the GAP backends as a view; this docstring
is the formulation.

Formulation
-----------
Tasks :math:`t` (gang size :math:`k_t`, GPU share :math:`s_t`, GPU memory :math:`m_t`, CPU
:math:`c_t`, host memory :math:`r_t`), GPUs :math:`g` on nodes :math:`n(g)`, eligible pairs
:math:`E` (type allowed and not forbidden, type memory :math:`\ge \max(m_t, \text{min\_gpu\_memory})`,
node labels match the selector, GPU healthy and not over the temperature limit, duration known,
and in horizon mode :math:`s_t d_{tg} \le H`). Binary :math:`x_{tg}` (t uses g), :math:`z_{tn}`
(t runs on node n), :math:`y_t` (t dropped, only for optional tasks):

.. math::

    \sum_n z_{tn} + y_t = 1, \qquad \sum_{g \in n} x_{tg} = k_t z_{tn}
    \qquad (\text{gang on one node; same type: } \sum_{g \in n, \mathrm{type}(g)=\kappa} x_{tg}
    = k_t w_{tn\kappa},\ \sum_\kappa w_{tn\kappa} = z_{tn})

    \sum_t a_{tg} x_{tg} \le A_g \quad (a = s_t, A = 1 \text{ side by side, or }
    a = s_t d_{tg}, A = H \text{ with a horizon}), \qquad \sum_t m_t x_{tg} \le M_g \text{ (side by side)}

    \sum_t c_t z_{tn} \le C_n, \qquad \sum_t r_t z_{tn} \le R_n, \qquad
    \sum_{t \in S} z_{tn} \le 1 \;\; \forall \text{ spread group } S, n.

Further resources r, each with its own per-GPU capacity, may come with the program (the matrix
form's: :math:`\sum_t a_{rtg} x_{tg} \le b_{rg}`, loads per GPU class); the matrix form is the
program with one class and one pseudo-node per GPU, no shares (``shares`` False), every task
required and its cost table as :math:`c_{tg}` (built in :mod:`gpuplan.program.build`).

CPU-only tasks (``gpus: 0``) take no GPU, only node CPU and host memory. When a problem has any,
every node n gets one *host slot* :math:`h(n)`, a pseudo-GPU of type NONE (its own class, always
usable, GPU memory 0) that only CPU-only tasks are eligible for; such a task is compiled as a gang
of one (:math:`k_t = 1`) with :math:`s_t = m_t = 0`, so :math:`x_{t\,h(n)} = z_{tn}` and it
meets other tasks only in the node rows (CPU, memory, spread) and the selector, on GPU nodes and
on nodes without GPUs alike. Its duration is :math:`d_t = \mathrm{work}_t` (speed 1, plus
transfer), which must fit in H with a horizon; it costs nothing in 'cost' and 'energy' (no
GPU-hours), weighs :math:`w_t` = 0 GPUs, 1 by count or :math:`\mathrm{work}_t` by work in
'placed', and counts in 'nodes_used' but not in 'gpus_used' or 'balance' (host slots are no
GPUs, and their load is 0).

Durations include data transfer: :math:`d_{tg} = d_{t,\mathrm{type}(g)} + 8\,\mathrm{input}_t /
(3600\, \mathrm{bw}_{n(g)})` hours. With a horizon, node CPU and memory are held as if all of a node's
tasks ran at once (conservative), and a gang's GPUs each spend its duration within their budgets; the
model does not line up the gang's start times across its GPUs (a relaxation: gangs sharing GPUs
with other gangs may need a later start than the budgets suggest). Objective, each criterion in its
own unit, combined with weights :math:`\lambda`:

.. math::

    \min \sum_{tg} (\lambda_{\mathrm{cost}} \pi_g + \lambda_{\mathrm{energy}} e\, P_g/1000)\, s_t
    d_{tg}\, x_{tg} + \sum_{t,g \notin \mathrm{cur}(t)} \tfrac{\mu_t}{k_t} x_{tg}
    + \lambda_{\mathrm{cost}} \sum_{D,n} \phi\, |D|\, v_{Dn}
    + \lambda_{\mathrm{gpus}} \sum_g u_g + \lambda_{\mathrm{nodes}} \sum_n o_n + \lambda_{\mathrm{bal}} U
    + \sum_t p_t y_t

with :math:`v_{Dn} \ge z_{tn}` for t reading dataset D (one copy per node; tasks without a dataset
pay :math:`\phi\,\mathrm{input}_t` each), :math:`u_g \ge x_{tg}`, :math:`o_n \ge z_{tn}`,
:math:`U \ge \sum_t a_{tg} x_{tg} / A_g`, and migration :math:`\mu_t` charged per GPU left
(:math:`\mu_t / k_t` each; all of it when a running task is dropped). Drop penalties
:math:`p_t = B_{\mathrm{tier}(t)} + \lambda_{\mathrm{placed}} w_t` (w: the task's GPU request, count
or work) with the tier bases of :mod:`gpuplan.program.priorities`, the same formula as the GAP
core (:math:`S` = M bounding every other term; :math:`B_1 = 0` when 'placed' is a criterion, the
user's trade-off). When the tiers are too wide to weigh exactly, every tier gets :math:`B_1` and
`solve_fleet` keeps the priority order by solving tier by tier. A lexicographic
objective is cut into *stages* of consecutive criteria (:mod:`gpuplan.program.lexicographic`):
within a stage ending with criterion b, :math:`\lambda_b = 1` and :math:`\lambda_i = 1 + \sum_{i <
j \le b} \lambda_j \mathrm{range}_j / \mathrm{unit}_i`, so one unit of an earlier criterion
outweighs every later one of the stage, and no stage spans more than float64 tells apart
(`LEXICOGRAPHIC_EXACT` units of its last criterion). Usually that is one stage, the whole
objective. Otherwise `compile_fleet(p, stage=k)` weighs stage k's criteria only (the others get
:math:`\lambda = 0`, the tier bases are built over that stage's span) and `solve_lexicographic`
solves the stages in order, each holding the objectives of the ones before it; the plan's objective
is then stage 1's.

A *scheduled* problem (`Problem.scheduled`) keeps shares and memory side by side (capacity 1, no
GPU-hours budget: the horizon becomes every task's latest end), drops the pairs on which a task
cannot run between its release :math:`r_t` and its latest end :math:`\bar d_t` (deadline and horizon:
:math:`r_t + d_{tg} \le \bar d_t`), and carries the time arrays (`Times`) that
:mod:`gpuplan.program.schedule` adds to the placement: there the rules hold at every instant, and the
time criteria weigh :math:`\lambda_{\mathrm{mk}}, \lambda_{\mathrm{ct}}, \lambda_{\mathrm{td}}`.
No plan's task ends after :math:`E = \min(\max_t r_t + \sum_t \max_g d_{tg}, \max_t \bar d_t)`
(left-shifted), so E, :math:`E \sum_t w_t` and :math:`E \sum_t w_t` are the ranges of makespan,
completion time and tardiness, and M grows by :math:`(\lambda_{\mathrm{mk}} + (\lambda_{\mathrm{ct}}
+ \lambda_{\mathrm{td}}) \sum_t w_t) E`. `balance` is refused there (a GPU's use changes over time).

Costs per GPU depend on the task and the GPU's *class* (type, node bandwidth), not the GPU itself,
so the arrays are [T, classes] and scale to thousands of tasks and GPUs; migration is the only
per-GPU term, kept as the current placement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuplan.errors import InputError
from gpuplan.models import Matrix, Problem
from gpuplan.models.objective import TIME_KINDS
from gpuplan.program.compile import duration_table
from gpuplan.program.lexicographic import lexicographic_stages, one_stage_span
from gpuplan.program.priorities import TiersTooWide, flat_penalties, tier_penalties, tiers

#: Marker for "no GPU" in a fleet assignment row, and "no group / dataset" in index arrays.
NONE = -1
_TOL = 1e-9


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FleetProgram:
    """Index-space arrays of the fleet formulation (module docstring). Floats in user units."""

    # tasks [T]
    gang: np.ndarray  # int64
    share: np.ndarray  # float64
    gpu_mem: np.ndarray  # float64
    cpu: np.ndarray  # float64
    ram: np.ndarray  # float64
    same_type: np.ndarray  # bool
    cpu_only: np.ndarray  # bool: a 0-GPU task (gang 1 here: it takes its node's host slot, share 0)
    spread: np.ndarray  # int64, NONE or group index
    dataset: np.ndarray  # int64, NONE or dataset index
    optional: np.ndarray  # bool
    priority: np.ndarray  # int64
    penalty: np.ndarray  # float64: objective added when the task is dropped
    weight: np.ndarray  # float64: the placed-work measure w_t
    current: np.ndarray  # int64 [T, K]: current GPUs, NONE-padded
    move_cost: np.ndarray  # float64: mu_t / k_t per GPU left; mu_t when dropped
    # GPUs [G], then one host slot per node when some task is CPU-only
    gpu_node: np.ndarray  # int64
    gpu_type: np.ndarray  # int64, NONE for a host slot
    gpu_class: np.ndarray  # int64
    gpu_ok: np.ndarray  # bool: healthy and cool enough
    mem_cap: np.ndarray  # float64: GPU memory (a resource side by side)
    # nodes [N]
    node_cpu: np.ndarray  # float64, inf when unlimited
    node_ram: np.ndarray  # float64, inf when unlimited
    # task x GPU class [T, C]
    eligible_c: np.ndarray  # bool
    cost_c: np.ndarray  # float64: objective per GPU used (cost/energy terms, weighted)
    load_c: np.ndarray  # float64: primary load per GPU (share, or share x duration)
    # datasets [D]
    dataset_charge: np.ndarray  # float64: one copy on one node
    transfer_each: np.ndarray  # float64 [T]: transfer charge of a task without a dataset
    # scalars
    capacity: float  # primary capacity per GPU: 1 (share) or H (hours)
    horizon: bool
    w_gpus: float
    w_nodes: float
    w_balance: float
    type_names: tuple[str, ...]
    # further resources per GPU, each with its own capacity (the matrix form's R resources):
    # loads [R, T, C], capacities [R, G]; none for a Problem
    extra_load_c: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    extra_cap: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    extra_names: tuple[str, ...] = ()
    shares: bool = True  # tasks take GPU shares and memory; False for the matrix form (extras only)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                object.__setattr__(self, f.name, _frozen(value))

    @property
    def n_tasks(self) -> int:
        return int(self.gang.shape[0])

    @property
    def n_gpus(self) -> int:
        return int(self.gpu_node.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.node_cpu.shape[0])

    @property
    def max_gang(self) -> int:
        return int(self.current.shape[1])

    @property
    def host(self) -> np.ndarray:
        """bool [G]: host slots (where CPU-only tasks go), which are not GPUs."""
        return self.gpu_type == NONE

    def replace(self, **changes: Any) -> FleetProgram:
        return dataclasses.replace(self, **changes)

    def eligible(self, t: int) -> np.ndarray:
        """bool [G]: GPUs task t may use (capacity aside). Read-only: one array per distinct row of
        `eligible_c`, cached, since tasks share few rows and a fleet has many GPUs."""
        cache: dict[bytes, np.ndarray] = self.__dict__.setdefault("_eligible_rows", {})
        key = self.eligible_c[t].tobytes()
        if key not in cache:
            cache[key] = _frozen(self.eligible_c[t, self.gpu_class] & self.gpu_ok)
        return cache[key]

    def usable_per_class(self) -> np.ndarray:
        """int [classes]: healthy, cool-enough GPUs (and host slots) of each class."""
        return np.bincount(self.gpu_class[self.gpu_ok], minlength=self.eligible_c.shape[1])

    def dominant_size(self) -> np.ndarray:
        """float [T]: the largest share of the average GPU (its share of the fleet's CPU and host memory
        too) a task takes: gang x share, CPU and host memory per GPU; how hard a task is to fit."""
        gpus = max(int((self.gpu_ok & ~self.host).sum()), 1)
        rel = [self.gang * self.share]
        for cap, need in ((self.node_cpu, self.cpu), (self.node_ram, self.ram)):
            finite = cap[np.isfinite(cap)]
            if finite.size and finite.sum() > 0:
                rel.append(need / (finite.sum() / gpus))
        return np.maximum.reduce(rel)

    def has_home(self) -> np.ndarray:
        """bool [T]: tasks with an eligible class that holds a usable GPU (or host slot)."""
        return (self.eligible_c & (self.usable_per_class() > 0)[None, :]).any(axis=1)

    def empty_assign(self) -> np.ndarray:
        return np.full((self.n_tasks, self.max_gang), NONE, dtype=np.int64)

    # --- evaluation -----------------------------------------------------------------------
    def usage(self, assign: np.ndarray) -> dict[str, np.ndarray]:
        """Per-GPU primary load and memory, per-node CPU and RAM of an assignment."""
        load = np.zeros(self.n_gpus)
        mem = np.zeros(self.n_gpus)
        count = np.zeros(self.n_gpus, dtype=np.int64)
        cpu = np.zeros(self.n_nodes)
        ram = np.zeros(self.n_nodes)
        t_idx, k_idx = np.nonzero(assign >= 0)
        g = assign[t_idx, k_idx]
        np.add.at(load, g, self.load_c[t_idx, self.gpu_class[g]])
        np.add.at(mem, g, self.gpu_mem[t_idx])
        np.add.at(count, g, 1)
        placed = np.flatnonzero(assign[:, 0] >= 0)
        nodes = self.gpu_node[assign[placed, 0]]
        np.add.at(cpu, nodes, self.cpu[placed])
        np.add.at(ram, nodes, self.ram[placed])
        extra = np.zeros((len(self.extra_names), self.n_gpus))
        for r in range(extra.shape[0]):
            np.add.at(extra[r], g, self.extra_load_c[r, t_idx, self.gpu_class[g]])
        return {"load": load, "mem": mem, "count": count, "cpu": cpu, "ram": ram, "extra": extra}

    def objective(self, assign: np.ndarray) -> float:
        """The objective (user units, weighted) of an assignment [T, K] (NONE-padded rows)."""
        placed = assign[:, 0] >= 0
        t_idx, k_idx = np.nonzero(assign >= 0)
        g = assign[t_idx, k_idx]
        total = float(self.cost_c[t_idx, self.gpu_class[g]].sum())
        moved = np.ones(t_idx.shape[0], dtype=bool)
        for j in range(self.max_gang):
            moved &= g != self.current[t_idx, j]
        has_cur = self.current[t_idx, 0] >= 0
        total += float(self.move_cost[t_idx][moved & has_cur].sum())
        dropped = ~placed
        total += float(self.penalty[dropped].sum())
        total += float((self.move_cost * self.gang)[dropped & (self.current[:, 0] >= 0)].sum())
        total += float(self.transfer_each[placed].sum())
        ds = placed & (self.dataset >= 0)
        if ds.any():
            pairs = np.unique(np.stack([self.dataset[ds], self.gpu_node[assign[ds, 0]]], axis=1), axis=0)
            total += float(self.dataset_charge[pairs[:, 0]].sum())
        if self.w_gpus:
            total += self.w_gpus * int(np.unique(g[~self.host[g]]).size)
        if self.w_nodes:
            total += self.w_nodes * int(np.unique(self.gpu_node[g]).size)
        if self.w_balance:
            total += self.w_balance * self.max_utilization(assign)
        return total

    def max_utilization(self, assign: np.ndarray) -> float:
        """Largest utilization over GPUs: of the primary resource, or of the further resources when
        tasks take no shares (the matrix form)."""
        u = self.usage(assign)
        if self.shares:
            return float(u["load"].max(initial=0.0) / self.capacity)
        ratio = np.divide(u["extra"], self.extra_cap, out=np.zeros_like(u["extra"]), where=self.extra_cap > 0)
        return float(ratio.max(initial=0.0))

    def violations(self, assign: np.ndarray) -> list[str]:
        """Every broken rule of an assignment (empty when feasible); index-space messages."""
        out: list[str] = []
        if assign.shape != (self.n_tasks, self.max_gang):
            return [f"assignment shape {assign.shape}, expected {(self.n_tasks, self.max_gang)}"]
        used = assign >= 0
        n_used = used.sum(axis=1)
        placed = n_used > 0
        dropped_required = np.flatnonzero(~placed & ~self.optional)
        out.extend(f"required task {t} dropped" for t in dropped_required[:20])
        prefix = used[:, 0] & np.all(used[:, :-1] | ~used[:, 1:], axis=1) if self.max_gang > 1 else used[:, 0]
        bad_size = placed & ((n_used != self.gang) | ~prefix)
        out.extend(
            f"task {t}: {n_used[t]} GPUs for a gang of {self.gang[t]}" for t in np.flatnonzero(bad_size)[:20]
        )
        ok_rows = placed & ~bad_size
        t_idx, k_idx = np.nonzero(used & ok_rows[:, None])
        g = assign[t_idx, k_idx]
        inelig = ~(self.eligible_c[t_idx, self.gpu_class[g]] & self.gpu_ok[g])
        out.extend(f"task {t}: ineligible GPU" for t in np.unique(t_idx[inelig])[:20])
        rows = np.flatnonzero(ok_rows & (self.gang > 1))
        if rows.size:
            sub = assign[rows]
            mask = sub >= 0
            first = sub[:, :1]
            node_first = self.gpu_node[first]
            g_safe = np.where(mask, sub, first)
            spans = np.any(mask & (self.gpu_node[g_safe] != node_first), axis=1)
            out.extend(f"task {t}: gang spans nodes" for t in rows[spans][:20])
            mixes = (
                np.any(mask & (self.gpu_type[g_safe] != self.gpu_type[first]), axis=1) & self.same_type[rows]
            )
            out.extend(f"task {t}: gang mixes types" for t in rows[mixes][:20])
            srt = np.sort(np.where(mask, sub, -1 - np.arange(sub.shape[1])[None, :]), axis=1)
            dup = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
            out.extend(f"task {t}: a GPU used twice" for t in rows[dup][:20])
        u = self.usage(assign)
        if np.any(u["load"] > self.capacity * (1 + _TOL) + _TOL):
            out.append(f"GPU load over capacity on {np.flatnonzero(u['load'] > self.capacity + _TOL)[:5]}")
        if not self.horizon and np.any(u["mem"] > self.mem_cap * (1 + _TOL) + _TOL):
            out.append("GPU memory over capacity")
        if np.any(u["cpu"] > self.node_cpu * (1 + _TOL) + _TOL):
            out.append("node CPU over capacity")
        if np.any(u["ram"] > self.node_ram * (1 + _TOL) + _TOL):
            out.append("node memory over capacity")
        for r, name in enumerate(self.extra_names):
            if np.any(u["extra"][r] > self.extra_cap[r] * (1 + _TOL) + _TOL):
                out.append(f"GPU {name} over capacity")
        sp = (assign[:, 0] >= 0) & (self.spread >= 0)
        if sp.any():
            pairs = np.stack([self.spread[sp], self.gpu_node[assign[sp, 0]]], axis=1)
            if np.unique(pairs, axis=0).shape[0] != pairs.shape[0]:
                out.append("two tasks of one spread group on one node")
        return out


@dataclass(frozen=True, eq=False)
class Times:
    """The time arrays of a scheduled problem (`Problem.scheduled`), in hours; the scheduled program
    (:mod:`gpuplan.program.schedule`) is the fleet program plus these."""

    release: np.ndarray  # float64 [T]
    deadline: np.ndarray  # float64 [T]: deadline_h and the horizon, inf when neither
    due: np.ndarray  # float64 [T], inf when none
    weight: np.ndarray  # float64 [T]: the task's weight in completion time and tardiness
    pred: np.ndarray  # int64 [E, 2]: (a, b) with a in b's `after`
    w_makespan: float
    w_completion: float
    w_tardiness: float
    end_max: float  # no plan's task ends later (the ranges of the time criteria)


@dataclass(frozen=True, eq=False)
class FleetCompiled:
    """A FleetProgram plus the names to decode it (of a Problem, or of the matrix form)."""

    program: FleetProgram
    source: Problem | Matrix
    task_ids: tuple[str, ...]
    gpu_ids: tuple[str, ...]
    node_ids: tuple[str | None, ...]  # None for the matrix form's one-GPU pseudo-nodes
    duration: np.ndarray  # float64 [T, classes]: hours incl. transfer, NaN where undefined
    terms: tuple[tuple[str, float], ...]  # (criterion, lambda) actually used
    money_c: np.ndarray  # float64 [T, classes]: GPU-hours x price of one GPU of the class (money)
    transfer_money: np.ndarray  # float64 [T]: data transfer charged to the task alone (money)
    flat_tiers: bool = False  # every tier weighed alike: priorities are kept by a tier-by-tier solve
    stage: int = 0  # the stage of a lexicographic objective whose levels `terms` weigh (others weigh 0)
    stages: int = 1  # stages of a lexicographic objective (program/lexicographic.py); 1 otherwise
    span_units: float = 0.0  # when stages > 1: the span one weighted sum would need (units of the last)
    times: Times | None = None  # a scheduled problem's time arrays (program/schedule.py)


def _placed_weight(p: Problem, dur_types: np.ndarray) -> np.ndarray:
    """w_t: GPUs requested (0 for a CPU-only task), 1 per task, or work (a CPU-only task's work_h)."""
    how = p.objective.placed_weight
    gang = np.array([t.gpus for t in p.tasks], dtype=np.float64)
    share = np.array([t.gpu_share for t in p.tasks], dtype=np.float64)
    if how == "count":
        return np.ones(len(p.tasks))
    if how == "gpu":
        return gang * share
    speed = np.array([gt.speed for gt in p.gpu_types])
    work = np.array(
        [
            t.work_h if t.work_h is not None else float(np.nanmin(dur_types[i] * speed))
            for i, t in enumerate(p.tasks)
        ]
    )
    return np.where(gang == 0, work, work * gang * share)


def compile_fleet(p: Problem, flat_tiers: bool = False, stage: int = 0) -> FleetCompiled:
    """Problem -> FleetCompiled (see the module docstring for the math). Raises TiersTooWide when
    the priority tiers cannot be weighed exactly; `flat_tiers` then gives every tier the first
    tier's penalty (for a tier-by-tier solve). A lexicographic objective too wide for one weighted
    sum has `stages` > 1; `stage` picks the one whose levels are weighed (the program of that stage
    of `solve_lexicographic`)."""
    pairs = p.all_gpus()
    type_index = {gt.name: k for k, gt in enumerate(p.gpu_types)}
    node_index = {n.id: i for i, n in enumerate(p.nodes)}
    gpu_index = {g.id: i for i, (_, g) in enumerate(pairs)}
    t_n, g_n, n_n = len(p.tasks), len(pairs), len(p.nodes)
    g_type = np.array([type_index[g.type] for _, g in pairs], dtype=np.int64)
    g_node = np.array([node_index[n.id] for n, _ in pairs], dtype=np.int64)
    limit = p.temperature_limit_c
    g_ok = np.array(
        [
            g.healthy and not (limit is not None and g.temperature_c is not None and g.temperature_c > limit)
            for _, g in pairs
        ],
        dtype=bool,
    )
    gpu_ids = [g.id for _, g in pairs]
    cpu_only = np.array([t.gpus == 0 for t in p.tasks], dtype=bool)
    if cpu_only.any():
        # One host slot per node (type NONE, always usable): the only place CPU-only tasks may take.
        g_type = np.r_[g_type, np.full(n_n, NONE, dtype=np.int64)]
        g_node = np.r_[g_node, np.arange(n_n, dtype=np.int64)]
        g_ok = np.r_[g_ok, np.ones(n_n, dtype=bool)]
        gpu_ids += [f"{n.id}/host" for n in p.nodes]
        g_n += n_n
    # GPU classes: (type, node labels, node bandwidth); everything task-dependent is per class.
    node_sig = [(tuple(sorted(n.labels.items())), n.bandwidth_gbps) for n in p.nodes]
    class_of: dict[tuple[Any, ...], int] = {}
    g_class = np.empty(g_n, dtype=np.int64)
    for i in range(g_n):
        key = (int(g_type[i]), node_sig[g_node[i]])
        g_class[i] = class_of.setdefault(key, len(class_of))
    classes = list(class_of)
    c_n = len(classes)
    c_type = np.array([k[0] for k in classes], dtype=np.int64)
    c_host = c_type == NONE
    ct = np.where(c_host, 0, c_type)  # host classes index type 0 below, then are overridden
    c_labels = [dict(k[1][0]) for k in classes]
    c_bw = np.array([np.inf if k[1][1] is None else k[1][1] for k in classes])

    tasks = p.tasks
    # A CPU-only task is one slot (its node's host slot) of share 0 in the program.
    share = np.array([0.0 if t.gpus == 0 else t.gpu_share for t in tasks], dtype=np.float64)
    gang = np.array([max(t.gpus, 1) for t in tasks], dtype=np.int64)
    need_mem = np.array([max(t.gpu_memory_gb, t.min_gpu_memory_gb) for t in tasks])
    type_mem = np.array([gt.memory_gb for gt in p.gpu_types])
    dur_types = duration_table(p)  # [T, types]
    inp = np.array([t.input_gb for t in tasks])
    transfer_h = 8.0 * inp[:, None] / (3600.0 * c_bw[None, :])  # [T, C]
    dur_c = dur_types[:, ct] + transfer_h if t_n else np.zeros((0, c_n))
    if cpu_only.any():
        work = np.array([t.work_h if t.gpus == 0 else np.nan for t in tasks], dtype=np.float64)
        dur_c[:, c_host] = work[:, None] + transfer_h[:, c_host]  # speed 1; NaN for GPU tasks
        dur_c[np.ix_(cpu_only, ~c_host)] = np.nan

    elig = np.isfinite(dur_c)
    elig &= _placement_rows(tasks, type_index, c_type, c_labels)
    type_mem_c = np.where(c_host, 0.0, type_mem[ct]) if c_n else np.zeros(0)
    if c_n:
        elig &= need_mem[:, None] <= type_mem_c[None, :] + 1e-12
    dur0 = np.where(elig, dur_c, 0.0)
    sched = p.scheduled
    if sched:
        # A scheduled task runs side by side with others at each instant, within its time window.
        release = np.array([t.release_h for t in tasks], dtype=np.float64)
        latest = np.array([np.inf if t.deadline_h is None else t.deadline_h for t in tasks], dtype=np.float64)
        if p.horizon_h is not None:
            latest = np.minimum(latest, p.horizon_h)
        elig &= release[:, None] + dur0 <= latest[:, None] * (1 + _TOL) + _TOL
        dur0 = np.where(elig, dur_c, 0.0)
    if p.horizon_h is not None and not sched:
        load_c = dur0 * share[:, None]
        elig &= load_c <= p.horizon_h * (1 + _TOL) + _TOL
        elig[cpu_only] &= dur0[cpu_only] <= p.horizon_h * (1 + _TOL) + _TOL  # runs within the horizon
        capacity = float(p.horizon_h)
    else:
        load_c = np.broadcast_to(share[:, None], (t_n, c_n)).copy()
        capacity = 1.0
    # A gang needs k usable GPUs of an eligible class on one node (of one type when same_type).
    same_type = np.array([t.same_type for t in tasks], dtype=bool)
    elig &= _gang_fits(elig, gang, same_type, g_class, g_ok, g_node, g_node * len(p.gpu_types) + g_type)[
        :, None
    ]

    # Time criteria weigh the schedule (program/schedule.py), not the placement: kept apart here.
    all_terms = p.objective.weights()
    terms = [(k, w) for k, w in all_terms if k not in TIME_KINDS]
    kinds = {k for k, _ in terms}
    price = np.where(c_host, 0.0, np.array([gt.cost_per_hour for gt in p.gpu_types])[ct])
    power = np.where(c_host, 0.0, np.array([gt.power_w for gt in p.gpu_types])[ct])
    cost_term = dur0 * share[:, None] * price[None, :]
    energy_term = dur0 * share[:, None] * power[None, :] / 1000.0 * p.objective.energy_price_per_kwh
    weight = _placed_weight(p, dur_types)

    ds_names = sorted({t.dataset for t in tasks if t.dataset is not None})
    ds_index = {d: i for i, d in enumerate(ds_names)}
    dataset = np.array([ds_index[t.dataset] if t.dataset else NONE for t in tasks], dtype=np.int64)
    ds_size = np.zeros(len(ds_names))
    for t in tasks:
        if t.dataset is not None:
            ds_size[ds_index[t.dataset]] = max(ds_size[ds_index[t.dataset]], t.input_gb)
    phi = p.transfer_cost_per_gb
    transfer_each = np.where(dataset < 0, inp * phi, 0.0)
    ds_charge = ds_size * phi
    mu = np.array([t.migration_cost for t in tasks])

    # Ranges and units of each criterion (for lexicographic weights and the priority bases).
    row_max = lambda a: float(np.where(elig, a, 0.0).max(axis=1, initial=0.0) @ gang)  # noqa: E731
    rng = {
        "cost": row_max(cost_term) + float(transfer_each.sum() + ds_charge.sum() * n_n),
        "energy": row_max(energy_term),
        "balance": 1.0,
        "gpus_used": float(g_n),
        "nodes_used": float(n_n),
        "placed": float(weight.sum()),
    }
    # Migration belongs to 'cost' when cost is a criterion; otherwise it counts at weight 1 (the
    # objective's own unit), as the last level of a lexicographic objective.
    mu_total = float(np.array([t.migration_cost for t in tasks]).sum())
    rng["cost"] += mu_total
    rng["migration"] = mu_total
    positive_w = weight[weight > 0]
    unit = {
        "cost": 1e-6 * max(rng["cost"], 1e-12),
        "energy": 1e-6 * max(rng["energy"], 1e-12),
        "balance": 1e-3,
        "gpus_used": 1.0,
        "nodes_used": 1.0,
        "placed": float(positive_w.min()) if positive_w.size else 1.0,
        "migration": 1e-6 * max(mu_total, 1e-12),
    }
    end_max, time_weight = 0.0, np.ones(t_n)
    if sched:
        # No left-shifted plan ends later than the last release plus every task's longest duration.
        time_weight = np.array([t.weight for t in tasks], dtype=np.float64)
        end_max = float(release.max(initial=0.0) + np.where(elig, dur_c, 0.0).max(axis=1, initial=0.0).sum())
        end_max = min(end_max, float(latest.max(initial=np.inf)))
        rng.update(
            makespan=end_max,
            completion_time=float(time_weight.sum()) * end_max,
            tardiness=float(time_weight.sum()) * end_max,
        )
        for k in TIME_KINDS:
            unit[k] = 1e-6 * max(rng[k], 1e-12)
    levels = [k for k, _ in all_terms] + ([] if "cost" in kinds or not mu_total else ["migration"])
    stages, span_units = 1, 0.0
    if p.objective.kind == "lexicographic":
        weights = lexicographic_stages(levels, rng, unit) or [{}]  # time criteria alone: none here
        stages = len(weights)
        if not 0 <= stage < stages:
            raise ValueError(f"stage {stage} of a lexicographic objective in {stages} stage(s)")
        terms = [(k, weights[stage].get(k, 0.0)) for k in levels]  # other stages' levels weigh 0
        if stages > 1:
            span_units = one_stage_span(levels, rng, unit)
    else:
        terms = list(all_terms) + ([("migration", 1.0)] if "migration" in levels else [])
    lam = dict(terms)
    w_time = {k: lam.get(k, 0.0) for k in TIME_KINDS}
    if sched and lam.get("balance"):
        raise InputError(
            "objective",
            "balance is not available for a scheduled problem (its use of a GPU changes over time):"
            " use gpus_used, makespan or completion_time",
        )
    lc, le = lam.get("cost", 0.0), lam.get("energy", 0.0)
    mu = mu * lam.get("cost", lam.get("migration", 0.0))
    move_cost = mu / gang
    cost_c = lc * cost_term + le * energy_term
    transfer_money = transfer_each
    transfer_each = lc * transfer_each
    ds_charge = lc * ds_charge
    w_gpus, w_nodes, w_balance = (
        lam.get("gpus_used", 0.0),
        lam.get("nodes_used", 0.0),
        lam.get("balance", 0.0),
    )

    optional = np.array([t.optional for t in tasks], dtype=bool)
    priority = np.array([t.priority for t in tasks], dtype=np.int64)
    class_usable = np.bincount(g_class[g_ok], minlength=c_n) > 0
    placeable = (elig & class_usable[None, :]).any(axis=1)
    m_total = (
        float(np.where(elig, cost_c, 0.0).max(axis=1, initial=0.0) @ gang)
        + float(transfer_each.sum() + ds_charge.sum() * n_n)
        + float((mu).sum())
        + w_gpus * g_n
        + w_nodes * n_n
        + w_balance
        + (w_time["makespan"] + (w_time["completion_time"] + w_time["tardiness"]) * time_weight.sum())
        * end_max
    )
    extra = lam.get("placed", 0.0) * weight
    opt = optional & placeable
    if flat_tiers:
        penalty = flat_penalties(opt, priority, m_total, extra, first_free="placed" in kinds)
    else:
        exact = tier_penalties(opt, priority, m_total, extra, first_free="placed" in kinds)
        if exact is None:
            raise TiersTooWide(f"{len(tiers(opt, priority))} priority tiers over {int(opt.sum())} tasks")
        penalty = exact

    k_max = int(gang.max(initial=1))
    current = np.full((t_n, k_max), NONE, dtype=np.int64)
    for i, t in enumerate(tasks):
        for j, gid in enumerate(t.current_gpus or []):
            current[i, j] = gpu_index[gid]
    program = FleetProgram(
        gang=gang,
        share=share,
        gpu_mem=np.array([t.gpu_memory_gb for t in tasks], dtype=np.float64),
        cpu=np.array([t.cpu_cores for t in tasks], dtype=np.float64),
        ram=np.array([t.memory_gb for t in tasks], dtype=np.float64),
        same_type=same_type,
        cpu_only=cpu_only,
        spread=_group_index([t.anti_affinity for t in tasks]),
        dataset=dataset,
        optional=optional,
        priority=priority,
        penalty=penalty,
        weight=weight,
        current=current,
        move_cost=move_cost,
        gpu_node=g_node,
        gpu_type=g_type,
        gpu_class=g_class,
        gpu_ok=g_ok,
        mem_cap=np.where(g_type == NONE, 0.0, type_mem[np.maximum(g_type, 0)]) if g_n else np.zeros(0),
        node_cpu=np.array([np.inf if n.cpu_cores is None else n.cpu_cores for n in p.nodes]),
        node_ram=np.array([np.inf if n.memory_gb is None else n.memory_gb for n in p.nodes]),
        eligible_c=elig,
        cost_c=np.where(elig, cost_c, 0.0),
        load_c=np.where(elig, load_c, 0.0),
        dataset_charge=ds_charge,
        transfer_each=transfer_each,
        capacity=capacity,
        horizon=p.horizon_h is not None and not sched,
        w_gpus=w_gpus,
        w_nodes=w_nodes,
        w_balance=w_balance,
        type_names=tuple(gt.name for gt in p.gpu_types),
    )
    return FleetCompiled(
        program=program,
        source=p,
        task_ids=tuple(t.id for t in tasks),
        gpu_ids=tuple(gpu_ids),
        node_ids=tuple(n.id for n in p.nodes),
        duration=np.where(elig, dur_c, np.nan),
        terms=tuple(terms),
        money_c=np.where(elig, cost_term, 0.0),
        transfer_money=transfer_money,
        flat_tiers=flat_tiers,
        stage=stage,
        stages=stages,
        span_units=span_units,
        times=_times(p, release, latest, time_weight, w_time, end_max) if sched else None,
    )


def _times(
    p: Problem,
    release: np.ndarray,
    latest: np.ndarray,
    weight: np.ndarray,
    w_time: dict[str, float],
    end_max: float,
) -> Times:
    """The time arrays of a scheduled problem."""
    index = {t.id: i for i, t in enumerate(p.tasks)}
    pred = [(index[a], b) for b, t in enumerate(p.tasks) for a in t.after]
    return Times(
        release=release,
        deadline=latest,
        due=np.array([np.inf if t.due_h is None else t.due_h for t in p.tasks], dtype=np.float64),
        weight=weight,
        pred=np.array(pred, dtype=np.int64).reshape(-1, 2),
        w_makespan=w_time["makespan"],
        w_completion=w_time["completion_time"],
        w_tardiness=w_time["tardiness"],
        end_max=end_max,
    )


def _placement_rows(
    tasks: list[Any], type_index: dict[str, int], c_type: np.ndarray, c_labels: list[dict[str, str]]
) -> np.ndarray:
    """bool [T, C]: the classes that each task's allowed and forbidden types and node selector admit,
    worked out once per distinct (allowed, forbidden, selector): batches repeat few of them."""
    rows: dict[tuple[Any, ...], int] = {}
    table: list[np.ndarray] = []
    which = np.empty(len(tasks), dtype=np.int64)
    for i, t in enumerate(tasks):
        key = (
            None if t.allowed_types is None else tuple(t.allowed_types),
            tuple(t.forbidden_types or ()),
            tuple(sorted(t.node_selector.items())) if t.node_selector else (),
        )
        j = rows.get(key)
        if j is None:
            row = np.ones(c_type.shape[0], dtype=bool)
            if t.allowed_types is not None:
                row &= np.isin(c_type, [type_index[x] for x in t.allowed_types])
            if t.forbidden_types:
                row &= ~np.isin(c_type, [type_index[x] for x in t.forbidden_types])
            if t.node_selector:
                row &= np.array(
                    [all(lab.get(k) == v for k, v in t.node_selector.items()) for lab in c_labels], dtype=bool
                )
            j = rows[key] = len(table)
            table.append(row)
        which[i] = j
    return np.array(table, dtype=bool).reshape(len(table), c_type.shape[0])[which]


def _gang_fits(
    elig: np.ndarray,
    gang: np.ndarray,
    same_type: np.ndarray,
    g_class: np.ndarray,
    g_ok: np.ndarray,
    node_key: np.ndarray,
    node_type_key: np.ndarray,
) -> np.ndarray:
    """bool [T]: tasks whose gang finds k usable GPUs of eligible classes on one node (of one type
    when same_type); always True for a single GPU. The most such GPUs on a node depends on the
    eligible classes and same_type alone, so it is counted once per distinct pair."""
    fits = np.ones(gang.shape[0], dtype=bool)
    rows = np.flatnonzero(gang > 1)
    if not rows.size:
        return fits
    keys = np.concatenate([elig[rows], same_type[rows, None]], axis=1)
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    most = np.empty(distinct.shape[0], dtype=np.int64)
    for j, key in enumerate(distinct):
        usable = key[:-1][g_class] & g_ok
        by = node_type_key if key[-1] else node_key
        most[j] = np.bincount(by[usable], minlength=1).max(initial=0)
    fits[rows] = most[inverse.reshape(-1)] >= gang[rows]
    return fits


def _group_index(names: list[str | None]) -> np.ndarray:
    index: dict[str, int] = {}
    return np.array([NONE if n is None else index.setdefault(n, len(index)) for n in names], dtype=np.int64)


__all__ = ["NONE", "FleetCompiled", "FleetProgram", "Times", "compile_fleet"]

r"""Parallel (event-driven) schedule-generation scheme for the scheduled program
(:mod:`gpuplan.program.schedule`): the fast heuristic for large programs.

Time advances from event to event, :math:`\tau_0 < \tau_1 < \dots`, the events being the releases
and the task ends. At each event :math:`\tau`, first the tasks ending at :math:`\tau` give their
resources back, then the *ready* tasks (released, every predecessor ended) are tried once each in
rule order (effective priority first, then the rule's key, as `list_schedule`), and each one that
fits *now* starts now, :math:`S_t = \tau`, on its best-fit placement; one that does not fit waits
for a later event (no head-of-line blocking). A placement fits at :math:`\tau` when the gang gets
k eligible GPUs of one node (one type when ``same_type``) each with its share and memory free, the
node has the CPU and host memory free, no task of its spread group runs there, and
:math:`\tau + p \le \bar d_t`. Among fitting placements the shortest duration wins, then the
cheapest, then *best fit*: the node left with the least free capacity,
:math:`(C_n - c_t)/\max C + (R_n - r_t)/\max R + (\sum_g \phi_g - k_t s_t)/\max_n G_n` (free CPU,
host memory and GPU shares), and on it the fullest GPUs the task fits on (with ``placement="frag"``
a one-GPU task goes instead where the fleet's fragmentation grows least: `heuristics.fragmentation`).
An optional task is
left out when it can no longer end by its deadline, or (unless a required task comes after it) when
placing it would add more than its drop penalty; a task whose predecessor is left out never becomes
ready and is left out too. Required tasks are left out only when they cannot be placed.

Unlike the serial scheme (`list_schedule`) a task never starts in a gap before a later one
(no backfilling into the past), but each decision looks only at the present, so a step is cheap.

Data structures and cost
------------------------
Free share and memory per GPU, free CPU and host memory per node, and per node its GPUs' free
shares and memories sorted in decreasing order (``top_share[n, j]``: the (j+1)-th largest), so
"could a gang of k with share s and memory m fit on node n" is the necessary test
:math:`\mathrm{top\_share}_{n,k-1} \ge s \wedge \mathrm{top\_mem}_{n,k-1} \ge m` plus CPU and memory:
O(1) per node, vectorised over the candidate nodes of the task's eligibility group (precomputed).
The exact test runs on the passing nodes, best first, over the node's few GPUs. Ends are a heap.

After each event's pass no waiting task fits anywhere; until the next end nothing frees up, and at
the next end only the nodes it frees (*changed*) can take a waiting task. So at an event the
waiting tasks are filtered against the changed nodes alone and only those passing are tried, on the
changed nodes only; new ready tasks are tried on every node. The filter runs per *profile* (tasks
alike in every demand, eligibility and spread group; `_profiles`), each holding its waiting ranks
in a sorted list, and a profile that fits nowhere is skipped for the rest of the event. One event
costs :math:`O(|\text{changed}| \cdot P)` numpy work (P profiles: 125 on the openb trace's 24,812
pods) plus :math:`O(N_t)` per try (N_t the task's candidate nodes); with E events and A tries
:math:`O(E (\log E + P) + A N)` in all.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import Sequence

import numpy as np

from gpuplan.heuristics.fragmentation import CANDIDATES, Fragmentation
from gpuplan.heuristics.list_schedule import RULES, best_of, rule_order
from gpuplan.program.schedule import ScheduleProgram, fastest, must_place

#: Placement rules of the parallel scheme: best fit, or fragmentation-aware (one-GPU tasks).
PLACEMENTS = ("fit", "frag")

_TOL = 5e-10  # capacity tolerance: half the verifier's, so accumulated float error stays within it
_TIME_TOL = 5e-10  # an end may pass a deadline by this (relative), half the verifier's


class _Fleet:
    """Free resources per GPU and node at the current instant, with the per-node sorted summaries
    of the module docstring."""

    def __init__(self, sp: ScheduleProgram) -> None:
        f = sp.fleet
        self.f = f
        g_n, n_n = f.n_gpus, f.n_nodes
        counts = np.bincount(f.gpu_node, minlength=n_n)
        width = max(int(counts.max(initial=0)), f.max_gang, 1)  # a gang's k-th column always exists
        order = np.lexsort((np.arange(g_n), f.gpu_node))
        slot = np.arange(g_n) - np.r_[0, np.cumsum(counts)][f.gpu_node[order]]
        self.slots = np.full((n_n, width), -1, dtype=np.int64)  # GPUs (and host slot) of each node
        self.slots[f.gpu_node[order], slot] = order
        self.n_slots = counts
        self.cap_share = np.full(g_n, 1.0 * (1 + _TOL) + _TOL)
        self.cap_mem = f.mem_cap * (1 + _TOL) + _TOL
        self.free_share = self.cap_share.copy()
        self.free_mem = self.cap_mem.copy()
        self.running = np.zeros(g_n, dtype=np.int64)
        self.cap_cpu = f.node_cpu * (1 + _TOL) + _TOL
        self.cap_ram = f.node_ram * (1 + _TOL) + _TOL
        self.free_cpu = self.cap_cpu.copy()
        self.free_ram = self.cap_ram.copy()
        self.node_running = np.zeros(n_n, dtype=np.int64)
        self.top_share = np.full((n_n, width), -np.inf)
        self.top_mem = np.full((n_n, width), -np.inf)
        self.frag: Fragmentation | None = None  # kept current when set (placement "frag")
        is_gpu = ~f.host
        self.gpu_free_sum = np.zeros(n_n)  # free GPU shares per node (host slots aside), for best fit
        np.add.at(self.gpu_free_sum, f.gpu_node[is_gpu], 1.0)
        for n in range(n_n):
            self._summarise(n)
        self.spread_busy: dict[int, np.ndarray] = {}  # group -> running count per node
        # best-fit normalisers: the largest finite capacity of each resource
        self.cpu_max = _finite_max(f.node_cpu)
        self.ram_max = _finite_max(f.node_ram)
        self.gpu_max = max(float(np.bincount(f.gpu_node[is_gpu], minlength=n_n).max(initial=0)), 1.0)

    def _summarise(self, n: int) -> None:
        gs = self.slots[n, : self.n_slots[n]]
        self.top_share[n, : gs.size] = -np.sort(-self.free_share[gs])
        self.top_mem[n, : gs.size] = -np.sort(-self.free_mem[gs])
        if self.frag is not None:
            self.frag.stale[n] = True

    def take(self, t: int, n: int, gpus: list[int], sign: int) -> None:
        """Start (sign 1) or end (sign -1) task t on node n's `gpus`."""
        f = self.f
        s, m = float(f.share[t]), float(f.gpu_mem[t])
        for g in gpus:
            self.running[g] += sign
            if self.running[g] == 0:  # back to exactly free: no float drift over many tasks
                self.free_share[g], self.free_mem[g] = self.cap_share[g], self.cap_mem[g]
            else:
                self.free_share[g] -= sign * s
                self.free_mem[g] -= sign * m
        if not f.host[gpus[0]]:
            self.gpu_free_sum[n] -= sign * s * len(gpus)
        self.node_running[n] += sign
        if self.node_running[n] == 0:
            self.free_cpu[n], self.free_ram[n] = self.cap_cpu[n], self.cap_ram[n]
        else:
            self.free_cpu[n] -= sign * float(f.cpu[t])
            self.free_ram[n] -= sign * float(f.ram[t])
        grp = int(f.spread[t])
        if grp >= 0:
            busy = self.spread_busy.setdefault(grp, np.zeros(f.n_nodes, dtype=np.int64))
            busy[n] += sign
        self._summarise(n)

    def may_fit(self, t: int, nodes: np.ndarray) -> np.ndarray:
        """bool per node of `nodes`: the necessary test of the module docstring (and spread)."""
        f = self.f
        k = int(f.gang[t])
        ok = (self.top_share[nodes, k - 1] >= f.share[t]) & (self.free_cpu[nodes] >= f.cpu[t])
        if f.gpu_mem[t] > 0:
            ok &= self.top_mem[nodes, k - 1] >= f.gpu_mem[t]
        if f.ram[t] > 0:
            ok &= self.free_ram[nodes] >= f.ram[t]
        grp = int(f.spread[t])
        if grp >= 0 and grp in self.spread_busy:
            ok &= self.spread_busy[grp][nodes] == 0
        return ok

    def may_fit_node(self, t: int, n: int) -> bool:
        """`may_fit` for one node, in scalars: most tries at an event are on the one node a task
        just left, and fail; numpy calls would cost more than the test."""
        f = self.f
        k = int(f.gang[t])
        if self.top_share[n, k - 1] < f.share[t] or self.free_cpu[n] < f.cpu[t]:
            return False
        if f.gpu_mem[t] > 0 and self.top_mem[n, k - 1] < f.gpu_mem[t]:
            return False
        if f.ram[t] > 0 and self.free_ram[n] < f.ram[t]:
            return False
        grp = int(f.spread[t])
        return not (grp >= 0 and grp in self.spread_busy and self.spread_busy[grp][n] != 0)

    def score(self, t: int, nodes: np.ndarray) -> np.ndarray:
        """Best-fit score of each node (less is a tighter fit)."""
        f = self.f
        k = float(f.gang[t]) * (not f.cpu_only[t])
        out = (self.gpu_free_sum[nodes] - k * f.share[t]) / self.gpu_max
        if self.cpu_max:
            out += (np.minimum(self.free_cpu[nodes], self.cpu_max) - f.cpu[t]) / self.cpu_max
        if self.ram_max:
            out += (np.minimum(self.free_ram[nodes], self.ram_max) - f.ram[t]) / self.ram_max
        return out


def _finite_max(x: np.ndarray) -> float:
    fin = x[np.isfinite(x)]
    return float(fin.max()) if fin.size and fin.max() > 0 else 0.0


class _Scheme:
    """One run of the parallel scheme (module docstring)."""

    def __init__(self, sp: ScheduleProgram, placement: str = "fit") -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")
        f = sp.fleet
        self.sp, self.f = sp, f
        self.fl = _Fleet(sp)
        if placement == "frag":
            self.fl.frag = Fragmentation(sp, self.fl.slots, self.fl.n_slots)
        self.p_min = fastest(sp)
        self.need = must_place(sp)
        self.limit = sp.deadline + _TIME_TOL * np.maximum(1.0, np.abs(np.nan_to_num(sp.deadline, posinf=0.0)))
        usable = f.gpu_ok
        # eligibility groups: tasks with one row of eligible_c share their candidate nodes
        inverse = np.unique(f.eligible_c, axis=0, return_inverse=True)[1]
        self.group = np.asarray(inverse).reshape(-1)
        n_groups = int(self.group.max(initial=-1)) + 1
        rows = np.zeros((n_groups, f.eligible_c.shape[1]), dtype=bool)
        rows[self.group] = f.eligible_c
        slots = self.fl.slots
        cls = np.append(f.gpu_class, -1)[slots]  # a NONE slot (-1) reads the appended -1
        ok_slot = (slots >= 0) & np.append(usable, False)[slots]
        # node_elig[n, grp]: node n holds a usable GPU of an eligible class of the group
        self.node_elig = np.zeros((f.n_nodes, n_groups), dtype=bool)
        for grp in range(n_groups):
            elig = np.append(rows[grp], False)  # class -1 (no slot) is never eligible
            self.node_elig[:, grp] = (elig[cls] & ok_slot).any(axis=1)
        self.cand = [np.flatnonzero(self.node_elig[:, grp]) for grp in range(n_groups)]
        # uniform: every eligible usable class gives the task one duration and one cost, so the
        # placement choice is best fit alone
        has = (f.usable_per_class() > 0)[None, :] & f.eligible_c
        d = np.where(has, sp.duration_c, np.nan)
        cst = np.where(has, f.cost_c, np.nan)
        with np.errstate(invalid="ignore"):
            self.uniform = (np.nanmax(d, axis=1, initial=-np.inf) == np.nanmin(d, axis=1, initial=np.inf)) & (
                np.nanmax(cst, axis=1, initial=-np.inf) == np.nanmin(cst, axis=1, initial=np.inf)
            )
        self.assign = f.empty_assign()
        self.start = np.full(f.n_tasks, np.nan)
        self.end = np.full(f.n_tasks, np.nan)
        self.makespan = 0.0

    # --- one node ---------------------------------------------------------------------------------
    def _gpus_fit(self, t: int, gs: np.ndarray) -> np.ndarray:
        """bool per GPU of `gs` (any shape): task t may take it now (an eligible class, usable,
        its share and GPU memory free)."""
        f, fl = self.f, self.fl
        ok = f.eligible_c[t][f.gpu_class[gs]] & f.gpu_ok[gs] & (fl.free_share[gs] >= f.share[t])
        if f.gpu_mem[t] > 0:
            ok &= fl.free_mem[gs] >= f.gpu_mem[t]
        return ok

    def on_node(self, t: int, n: int, now: float) -> tuple[float, float, list[int]] | None:
        """(duration, cost, GPUs) of task t's best placement on node n now, or None."""
        f, fl, sp = self.f, self.fl, self.sp
        if fl.free_cpu[n] < f.cpu[t] or fl.free_ram[n] < f.ram[t]:
            return None
        grp = int(f.spread[t])
        if grp >= 0 and grp in fl.spread_busy and fl.spread_busy[grp][n]:
            return None
        gs = fl.slots[n, : fl.n_slots[n]]
        c = f.gpu_class[gs]
        ok = self._gpus_fit(t, gs)
        k = int(f.gang[t])
        if ok.sum() < k:
            return None
        gs, c = gs[ok], c[ok]
        d = sp.duration_c[t, c]
        cost = f.cost_c[t, c]
        fits = np.flatnonzero(now + d <= self.limit[t])
        if fits.size < k:
            return None
        gs, c, d, cost = gs[fits], c[fits], d[fits], cost[fits]
        order = np.lexsort((gs, fl.free_share[gs], cost, d))  # fastest, cheapest, fullest, lowest
        if k == 1:
            i = int(order[0])
            return float(d[i]), float(cost[i]), [int(gs[i])]
        groups = [order]
        if f.same_type[t]:
            ty = f.gpu_type[gs[order]]
            groups = [order[ty == x] for x in np.unique(ty).tolist()]
        best: tuple[float, float, list[int]] | None = None
        for grp_order in groups:
            if grp_order.size < k:
                continue
            pick = grp_order[:k]
            got = (float(d[pick].max()), float(cost[pick].sum()), [int(g) for g in gs[pick]])
            if best is None or got[:2] < best[:2]:
                best = got
        return best

    # --- one task ---------------------------------------------------------------------------------
    def best_spot(
        self, t: int, now: float, nodes: np.ndarray | None
    ) -> tuple[float, float, int, list[int]] | None:
        """(duration, cost, node, GPUs) of task t's placement now over `nodes` (None: all its
        candidates), or None when none fits."""
        fl = self.fl
        grp = int(self.group[t])
        if nodes is not None and nodes.size == 1:  # the common try: on the one node just freed
            n = int(nodes[0])
            if not (self.node_elig[n, grp] and fl.may_fit_node(t, n)):
                return None
        cand = self.cand[grp] if nodes is None else nodes[self.node_elig[nodes, grp]]
        if not cand.size:
            return None
        cand = cand[fl.may_fit(t, cand)]
        if not cand.size:
            return None
        score = fl.score(t, cand)
        if (
            fl.frag is not None
            and cand.size > 1  # one node: nothing to choose
            and self.uniform[t]
            and self.f.gang[t] == 1
            and not self.f.cpu_only[t]
        ):
            got_frag = self._least_fragmenting(t, now, cand, score)
            if got_frag is not None:
                return got_frag
        if self.uniform[t]:
            i = int(np.argmin(score))
            got = self.on_node(t, int(cand[i]), now)
            if got is not None:
                return got[0], got[1], int(cand[i]), got[2]
            for i in np.argsort(score, kind="stable").tolist():
                got = self.on_node(t, int(cand[i]), now)
                if got is not None:
                    return got[0], got[1], int(cand[i]), got[2]
            return None
        # best first by a lower bound (fastest, cheapest eligible class of the node), then score
        f = self.f
        cls_rows = np.where(fl.slots[cand] >= 0, f.gpu_class[np.maximum(fl.slots[cand], 0)], 0)
        elig = f.eligible_c[t][cls_rows] & (fl.slots[cand] >= 0)
        d_lb = np.where(elig, self.sp.duration_c[t][cls_rows], np.inf).min(axis=1)
        c_lb = f.gang[t] * np.where(elig, f.cost_c[t][cls_rows], np.inf).min(axis=1)
        order = np.lexsort((cand, score, c_lb, d_lb))
        best: tuple[float, float, float, int, list[int]] | None = None
        for i in order.tolist():
            if best is not None and (d_lb[i], c_lb[i], score[i]) >= best[:3]:
                break
            got = self.on_node(t, int(cand[i]), now)
            if got is not None and (best is None or (got[0], got[1], score[i]) < best[:3]):
                best = (got[0], got[1], float(score[i]), int(cand[i]), got[2])
        return None if best is None else (best[0], best[1], best[3], best[4])

    def _least_fragmenting(
        self, t: int, now: float, cand: np.ndarray, score: np.ndarray
    ) -> tuple[float, float, int, list[int]] | None:
        """Task t's placement among the best-fit `cand` (scored `score`) whose fragmentation grows
        least (`heuristics.fragmentation`), or None when none fits."""
        fl, f = self.fl, self.f
        assert fl.frag is not None
        if cand.size > CANDIDATES:
            keep = np.argpartition(score, CANDIDATES)[:CANDIDATES]
            cand, score = cand[keep], score[keep]
        slots = fl.slots[cand]
        gs = np.maximum(slots, 0)
        ok = (slots >= 0) & self._gpus_fit(t, gs)
        free = np.where(ok, fl.free_share[gs], np.inf).min(axis=1)  # the fullest GPU it fits on
        has = np.isfinite(free)
        grow = fl.frag.growth(
            cand,
            fl.free_share,
            np.where(has, free, 0.0),
            float(f.share[t]),
            float(f.cpu[t]),
            float(f.ram[t]),
            fl.free_cpu[cand],
            fl.free_ram[cand],
        )
        for i in np.lexsort((cand, score, np.where(has, grow, np.inf))).tolist():
            if not has[i]:
                break
            got = self.on_node(t, int(cand[i]), now)
            if got is not None:
                return got[0], got[1], int(cand[i]), got[2]
        return None

    def worth(self, t: int, dur: float, cost: float, now: float) -> bool:
        """May task t start now (duration `dur`, placement cost `cost`)? Always for a task that must
        be placed; for another, when it adds no more to the objective than leaving it out."""
        if self.need[t]:
            return True
        sp, f = self.sp, self.f
        end = now + dur
        w = float(sp.weight[t])
        extra = cost + float(f.transfer_each[t])
        extra += sp.w_makespan * max(0.0, end - self.makespan) + sp.w_completion * w * end
        extra += sp.w_tardiness * w * max(0.0, end - float(sp.due[t]))
        moved = float(f.move_cost[t] * f.gang[t] * (f.current[t, 0] >= 0))
        return extra <= float(f.penalty[t]) + moved

    def place(self, t: int, now: float, dur: float, n: int, gpus: list[int]) -> float:
        self.assign[t, : len(gpus)] = gpus
        self.start[t], self.end[t] = now, now + dur
        self.makespan = max(self.makespan, now + dur)
        self.fl.take(t, n, gpus, 1)
        return now + dur


def _profiles(sp: ScheduleProgram, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(profile per task, one task of each profile): tasks alike in gang, share, GPU memory, CPU,
    host memory, eligibility and spread group fit exactly the same placements at one instant
    (deadlines aside)."""
    f = sp.fleet
    rows = np.stack([f.gang, f.share, f.gpu_mem, f.cpu, f.ram, group, f.spread], axis=1).astype(np.float64)
    _, first, prof = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return np.asarray(prof).reshape(-1), first


def event_schedule(
    sp: ScheduleProgram, rule: str = "spt", deadline: float | None = None, placement: str = "fit"
) -> tuple[np.ndarray, np.ndarray]:
    """One parallel schedule by `rule` (module docstring): (assign [T, K], start [T], NaN where left
    out). Past `deadline` (time.monotonic()) the tasks not yet started are left out: the plan is then
    partial, and `violations` names any required one. `placement` "fit" places by best fit,
    "frag" one-GPU tasks where the fleet's fragmentation grows least (`heuristics.fragmentation`).

    The waiting tasks are kept per *profile* (`_profiles`), each a sorted list of ranks: at an event
    the profiles that may fit a changed node are found at once (the necessary test, vectorised over
    profiles), and their lists are merged in rank order with the new ready tasks. A task of a
    profile that fits nowhere (no deadline involved) means none of its profile fits: the rest of
    that profile is skipped for the event.
    """
    f = sp.fleet
    if f.horizon:
        raise ValueError("the parallel schedule needs shares side by side (no horizon)")
    t_n = sp.n_tasks
    by_rank = rule_order(sp, rule)  # rank -> task
    rank = np.empty(t_n, dtype=np.int64)
    rank[by_rank] = np.arange(t_n)
    sch = _Scheme(sp, placement)
    fl = sch.fl
    prof, rep = _profiles(sp, sch.group)
    p_k, p_share, p_mem = f.gang[rep] - 1, f.share[rep], f.gpu_mem[rep]
    p_cpu, p_ram, p_group = f.cpu[rep], f.ram[rep], sch.group[rep]
    queue: list[list[int]] = [[] for _ in range(rep.size)]  # waiting ranks per profile, sorted
    dated = np.isfinite(sch.limit)  # a deadline: its fit depends on the task, not its profile alone
    succ: list[list[int]] = [[] for _ in range(t_n)]
    waiting_preds = np.zeros(t_n, dtype=np.int64)
    for a, b in sp.pred.reshape(-1, 2).tolist():
        succ[a].append(b)
        waiting_preds[b] += 1
    released = np.zeros(t_n, dtype=bool)
    arrivals = np.lexsort((np.arange(t_n), sp.release))
    release = sp.release[arrivals].tolist()
    homeless = ~np.isfinite(sch.p_min)  # no eligible usable GPU: never ready, left out
    ends: list[tuple[float, int]] = []
    node_of = np.full(t_n, -1, dtype=np.int64)
    nxt, tries = 0, 0
    while nxt < t_n or ends:
        now = min(release[nxt] if nxt < t_n else np.inf, ends[0][0] if ends else np.inf)
        changed: set[int] = set()
        new: list[int] = []
        while ends and ends[0][0] <= now:
            _, t = heapq.heappop(ends)
            n = int(node_of[t])
            fl.take(t, n, [g for g in sch.assign[t].tolist() if g >= 0], -1)
            changed.add(n)
            for b in succ[t]:
                waiting_preds[b] -= 1
                if waiting_preds[b] == 0 and released[b] and not homeless[b]:
                    new.append(int(rank[b]))
        while nxt < t_n and release[nxt] <= now:
            t = int(arrivals[nxt])
            nxt += 1
            released[t] = True
            if waiting_preds[t] == 0 and not homeless[t]:
                new.append(int(rank[t]))
        new.sort()
        ch = np.array(sorted(changed), dtype=np.int64)
        # the waiting profiles that may fit a changed node: heads of their queues, merged by rank
        heads: list[tuple[int, int, int]] = []  # (rank, profile, index in its queue)
        if ch.size:
            live = np.array([len(q) > 0 for q in queue], dtype=bool)
            if live.any():
                hit = np.zeros(rep.size, dtype=bool)
                for n in ch.tolist():
                    hit |= (
                        (p_share <= fl.top_share[n, p_k])
                        & (p_mem <= fl.top_mem[n, p_k])
                        & (p_cpu <= fl.free_cpu[n])
                        & (p_ram <= fl.free_ram[n])
                        & sch.node_elig[n, p_group]
                    )
                heads = [(queue[q][0], q, 0) for q in np.flatnonzero(hit & live).tolist()]
                heapq.heapify(heads)
        nowhere: set[int] = set()  # profiles that fit no node now (tried on all of them)
        nowhere_ch: set[int] = set()  # profiles that fit no changed node now
        later: list[int] = []  # new ready tasks that wait: queued after the pass
        i_new = 0
        while heads or i_new < len(new):
            tries += 1
            if deadline is not None and tries % 64 == 0 and time.monotonic() > deadline:
                return sch.assign, sch.start
            from_old = i_new >= len(new) or (bool(heads) and heads[0][0] < new[i_new])
            if from_old:
                r, q, idx = heapq.heappop(heads)
                if q in nowhere or q in nowhere_ch:
                    continue
            else:
                r = new[i_new]
                i_new += 1
            t = int(by_rank[r])
            q = int(prof[t])
            spot = None
            gone = now + sch.p_min[t] > sch.limit[t]  # can no longer end by its deadline: left out
            if not gone and not (q in nowhere or (from_old and q in nowhere_ch)):
                spot = sch.best_spot(t, now, ch if from_old else None)
                if spot is None and not dated[t]:
                    (nowhere_ch if from_old else nowhere).add(q)
            if spot is not None:
                dur, cost, n, gpus = spot
                gone = not sch.worth(t, dur, cost, now)  # left out: it adds more than its drop penalty
                if not gone:
                    heapq.heappush(ends, (sch.place(t, now, dur, n, gpus), t))
                    node_of[t] = n
            if from_old:
                if spot is not None or gone:
                    queue[q].pop(idx)  # started or left out: the next one moves into idx
                else:
                    idx += 1
                if idx < len(queue[q]) and q not in nowhere and q not in nowhere_ch:
                    heapq.heappush(heads, (queue[q][idx], q, idx))
            elif spot is None and not gone:
                later.append(r)
        for r in later:
            bisect.insort(queue[int(prof[by_rank[r]])], r)
    return sch.assign, sch.start


def best_event_schedule(
    sp: ScheduleProgram, rules: Sequence[str] = RULES, deadline: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The best parallel schedule over `rules`, by `list_schedule.rank`."""
    return best_of(sp, rules, event_schedule, deadline)


__all__ = ["PLACEMENTS", "best_event_schedule", "event_schedule"]

r"""Serial schedule-generation scheme for the scheduled program (:mod:`gpuplan.program.schedule`).

Tasks are taken one at a time from the *ready* set (every predecessor already decided), highest
effective priority first (a task's own priority or the highest of its descendants', so a
low-priority predecessor does not hold back an urgent successor), then by a rule:

- ``spt``: shortest fastest duration :math:`\underline p_t` first;
- ``edd``: earliest :math:`\min(\delta_t, \bar d_t)` (due or deadline) first;
- ``cp``: longest remaining critical path :math:`q_t = \underline p_t + \max_{(t,b) \in P} q_b`;
- ``fifo``: earliest release first;
- ``wspt``: weighted shortest processing time (Smith's rule), smallest :math:`\underline p_t / w_t`
  first (weight 0 last): on one machine it minimises :math:`\sum_t w_t E_t`; with unit weights it
  is ``spt``;
- ``area``: Smith's rule with the task's size, smallest :math:`\underline p_t a_t / w_t` first, where
  :math:`a_t = \max(k_t s_t / G^{\max}, c_t / C^{\max}, r_t / R^{\max})` is the task's dominant
  share of the largest node (GPU shares, CPU, host memory; :math:`10^{-9}` at least): with many
  resources a task of area :math:`p_t a_t` holds the others back by about that much, so small,
  short tasks go first.

`rules_for` orders the rules by the objective, since a large program may have time for one only
(``wspt``, then ``spt`` and ``area``, first for completion time; ``edd`` first for tardiness;
``cp`` first otherwise), and drops a rule that orders the tasks exactly as an earlier one
(``edd`` without due times or deadlines is the task order, ``wspt`` with unit weights is ``spt``).

Each task goes where it *ends* earliest, given what is already placed (ties: cheapest placement,
then lowest GPU index): its earliest start is :math:`\max(r_t, \max_{(a,t) \in P} E_a)`; a gang
takes k GPUs of one node (one type when ``same_type``) with one start. An optional task is left
out when its predecessor was, when it cannot end by its deadline, or (unless a required task comes
after it) when placing it would add more to the objective (placement cost plus the growth of the
time terms) than its drop penalty. A
required task that cannot be placed is left out too (``violations`` then reports it).

Profiles
--------
Resource use over time is a step function per row (a GPU: share and memory; a node: CPU and host
memory; a (spread group, node): running count), kept in padded arrays ``time[row, j]`` (breakpoints,
``time[row, 0] = 0``, padding ``inf``) and ``level[res, row, j]`` (use on
``[time[row, j], time[row, j+1])``). Placing a task inserts at most two breakpoints in each of its
rows: :math:`O(B)` per row, B the row's breakpoints.

Search per task, for its eligible GPUs :math:`G_t` at once: one vectorised pass over the GPU rows
(:math:`O(|G_t| B)` numpy work) gives each GPU's earliest window start :math:`\sigma_g` that fits
its share and memory, ignoring the node; :math:`\sigma_g` (for a gang: the k-th smallest of the
group's) plus the duration is a lower bound on the end there. Candidates are then taken best-first
by that bound: a candidate whose node (CPU, host memory, spread) also fits that window is the
answer; otherwise its exact earliest start is computed by intersecting the feasible-start sets
(unions of intervals) of its rows and it goes back into the queue with its exact end. So GPUs that
cannot win (identical idle GPUs of one class, or busy ones) are never looked at one by one, and the
exact, Python-level work is spent only where a node constraint binds.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence

import numpy as np

from gpuplan.program.schedule import (
    ScheduleProgram,
    fastest,
    must_place,
    objective,
    topological_order,
    violations,
)

#: The ordering rules, in the order `best_of` tries them.
RULES = ("cp", "spt", "edd", "fifo", "wspt", "area")

_TOL = 1e-9  # relative capacity tolerance, as the verifier's
_SLACK = 1e-10  # a window may overrun the next busy time by this (relative): float noise, within
# the verifier's time tolerance of 1e-9


def _cap(cap: np.ndarray) -> np.ndarray:
    return cap * (1 + _TOL) + _TOL


class _Rows:
    """Step profiles of many rows (module docstring), `n_res` resources each, growable."""

    def __init__(self, n_rows: int, n_res: int, width: int = 8) -> None:
        self.time = np.full((n_rows, width), np.inf)
        self.time[:, 0] = 0.0
        self.level = np.zeros((n_res, n_rows, width))
        self.n = np.ones(n_rows, dtype=np.int64)

    def add_row(self) -> int:
        """A new empty row; returns its index."""
        i = self.time.shape[0]
        self.time = np.vstack([self.time, np.full((1, self.time.shape[1]), np.inf)])
        self.time[i, 0] = 0.0
        self.level = np.concatenate([self.level, np.zeros((self.level.shape[0], 1, self.level.shape[2]))], 1)
        self.n = np.r_[self.n, 1]
        return i

    def add(self, i: int, s: float, e: float, demand: np.ndarray) -> None:
        """Add `demand` on [s, e) to row i (two breakpoints at most)."""
        n = int(self.n[i])
        t = self.time[i, :n]
        new_t = np.union1d(t, [s, e])
        lv = self.level[:, i, np.searchsorted(t, new_t, side="right") - 1]
        lv[:, (new_t >= s) & (new_t < e)] += demand[:, None]
        m = new_t.size
        if m > self.time.shape[1]:
            grow = max(m, 2 * self.time.shape[1]) - self.time.shape[1]
            self.time = np.hstack([self.time, np.full((self.time.shape[0], grow), np.inf)])
            self.level = np.concatenate([self.level, np.zeros((*self.level.shape[:2], grow))], axis=2)
        self.time[i, :m] = new_t
        self.level[:, i, :m] = lv
        self.n[i] = m

    def earliest(
        self, rows: np.ndarray, demand: np.ndarray, cap: np.ndarray, p: np.ndarray, est: float
    ) -> np.ndarray:
        """float [len(rows)]: per row the earliest S >= est with level + demand <= cap on [S, S+p)
        (inf when none); cap is [n_res, len(rows)]. Vectorised over rows of similar breakpoint
        counts (one block per power of two), so the work is about twice the breakpoints read."""
        out = np.empty(rows.size)
        n = self.n[rows]
        block = np.floor(np.log2(n)).astype(np.int64)
        for b in np.unique(block).tolist():
            sel = np.flatnonzero(block == b)
            out[sel] = self._earliest(rows[sel], demand, cap[:, sel], p[sel], est, int(n[sel].max()))
        return out

    def _earliest(
        self, rows: np.ndarray, demand: np.ndarray, cap: np.ndarray, p: np.ndarray, est: float, w: int
    ) -> np.ndarray:
        tm = self.time[rows, :w]
        ok = np.ones(tm.shape, dtype=bool)
        for r in range(self.level.shape[0]):
            if demand[r] > 0:
                ok &= self.level[r][rows, :w] + demand[r] <= _cap(cap[r])[:, None]
        # nxt[j]: the first busy breakpoint at or after segment j (inf when none).
        blocked = np.where(ok, np.inf, tm)
        nxt = np.minimum.accumulate(blocked[:, ::-1], axis=1)[:, ::-1]
        c = np.maximum(est, tm)
        valid = ok & (c + p[:, None] <= nxt + _SLACK * np.maximum(1.0, np.abs(nxt)))
        return np.where(valid, c, np.inf).min(axis=1, initial=np.inf)

    def fits(self, i: int, s: float, e: float, demand: np.ndarray, cap: np.ndarray) -> bool:
        """Does row i hold `demand` more on all of [s, e)?"""
        n = int(self.n[i])
        t = self.time[i, :n]
        j0 = int(np.searchsorted(t, s, side="right")) - 1
        j1 = int(np.searchsorted(t, e - _SLACK * max(1.0, abs(e)), side="left"))
        peak = self.level[:, i, j0 : max(j1, j0 + 1)].max(axis=1)
        return bool(np.all((demand <= 0) | (peak + demand <= _cap(cap))))

    def starts(self, i: int, demand: np.ndarray, cap: np.ndarray, p: float, est: float) -> list[tuple]:
        """Row i's feasible starts >= est for a window of length p: closed intervals [a, b]."""
        n = int(self.n[i])
        t = self.time[i, :n]
        ok = np.ones(n, dtype=bool)
        for r in range(self.level.shape[0]):
            if demand[r] > 0:
                ok &= self.level[r, i, :n] + demand[r] <= _cap(cap[r])
        out = []
        j = 0
        ok_l = ok.tolist()
        t_l = t.tolist()
        while j < n:
            if not ok_l[j]:
                j += 1
                continue
            k = j
            while k < n and ok_l[k]:
                k += 1
            end = t_l[k] if k < n else np.inf
            a = max(est, t_l[j])
            b = end - p + _SLACK * max(1.0, abs(end)) if end < np.inf else np.inf
            if a <= b:
                out.append((a, b))
            j = k
        return out


def _intersect(a: list[tuple], b: list[tuple]) -> list[tuple]:
    """Intersection of two sorted lists of disjoint closed intervals."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _at_least(sets: list[list[tuple]], k: int) -> list[tuple]:
    """Points covered by at least k of the interval lists (closed intervals)."""
    ev = sorted([(a, 0) for s in sets for a, _ in s] + [(b, 1) for s in sets for _, b in s])
    out, count, lo = [], 0, 0.0
    for x, kind in ev:
        if kind == 0:
            count += 1
            if count == k:
                lo = x
        else:
            if count == k:
                out.append((lo, x))
            count -= 1
    return out


class _State:
    """Profiles and running totals of one list schedule."""

    def __init__(self, sp: ScheduleProgram) -> None:
        f = sp.fleet
        self.sp, self.f = sp, f
        self.gpus = _Rows(f.n_gpus, 2)
        self.nodes = _Rows(f.n_nodes, 2)
        self.spread = _Rows(0, 1)
        self.spread_row: dict[tuple[int, int], int] = {}
        self.gpu_cap = np.stack([np.ones(f.n_gpus), f.mem_cap])
        self.node_cap = np.stack([f.node_cpu, f.node_ram])
        self.used_gpu = np.zeros(f.n_gpus, dtype=bool)
        self.used_node = np.zeros(f.n_nodes, dtype=bool)
        self.ds_on = set()
        self.makespan = 0.0
        self.assign = f.empty_assign()
        self.start = np.full(f.n_tasks, np.nan)
        self.end = np.full(f.n_tasks, np.nan)
        self.n_types = max(len(f.type_names), 1)

    # --- the node side of a window ------------------------------------------------------------------
    def _spread_of(self, t: int, n: int) -> int | None:
        grp = int(self.f.spread[t])
        return None if grp < 0 else self.spread_row.get((grp, n))

    def node_fits(self, t: int, n: int, s: float, e: float) -> bool:
        f = self.f
        dem = np.array([f.cpu[t], f.ram[t]])
        if not self.nodes.fits(n, s, e, dem, self.node_cap[:, n]):
            return False
        r = self._spread_of(t, n)
        return r is None or self.spread.fits(r, s, e, np.ones(1), np.ones(1))

    def node_starts(self, t: int, n: int, p: float, est: float) -> list[tuple]:
        f = self.f
        out = self.nodes.starts(n, np.array([f.cpu[t], f.ram[t]]), self.node_cap[:, n], p, est)
        r = self._spread_of(t, n)
        if r is not None:
            out = _intersect(out, self.spread.starts(r, np.ones(1), np.ones(1), p, est))
        return out

    def gpu_dem(self, t: int) -> np.ndarray:
        return np.array([self.f.share[t], self.f.gpu_mem[t]])

    # --- placement cost of each GPU -------------------------------------------------------------------
    def costs(self, t: int, gs: np.ndarray) -> np.ndarray:
        """Objective added by task t on each GPU of `gs` (node-level charges split over the gang)."""
        f = self.f
        k = int(f.gang[t])
        c = f.cost_c[t, f.gpu_class[gs]].copy()
        if f.current[t, 0] >= 0:
            c += np.where(np.isin(gs, f.current[t]), 0.0, f.move_cost[t])
        if f.w_gpus:
            c += f.w_gpus * (~self.used_gpu[gs] & ~f.host[gs])
        nodes = f.gpu_node[gs]
        if f.w_nodes:
            c += f.w_nodes * ~self.used_node[nodes] / k
        d = int(f.dataset[t])
        if d >= 0 and f.dataset_charge[d]:
            fresh = np.array([(d, n) not in self.ds_on for n in nodes.tolist()], dtype=bool)
            c += f.dataset_charge[d] * fresh / k
        return c

    # --- one task -------------------------------------------------------------------------------------
    def best_spot(self, t: int, est: float) -> tuple[float, float, float, list[int]] | None:
        """(end, cost, start, GPUs) of the earliest-ending placement of t from `est`, or None."""
        f, sp = self.f, self.sp
        dem = np.array([f.cpu[t], f.ram[t]])
        node_ok = np.all((dem[:, None] <= 0) | (dem[:, None] <= _cap(self.node_cap)), axis=0)
        gs = np.flatnonzero(f.eligible(t) & node_ok[f.gpu_node])
        if not gs.size:
            return None
        p = sp.duration_c[t, f.gpu_class[gs]]
        sig = self.gpus.earliest(gs, self.gpu_dem(t), self.gpu_cap[:, gs], p, est)
        cost = self.costs(t, gs)
        limit = float(sp.deadline[t])
        limit += _SLACK * max(1.0, abs(limit)) if np.isfinite(limit) else 0.0
        if f.gang[t] == 1:
            return self._single(t, est, gs, p, sig, cost, limit)
        return self._gang(t, est, gs, p, sig, cost, limit)

    def _single(
        self,
        t: int,
        est: float,
        gs: np.ndarray,
        p: np.ndarray,
        sig: np.ndarray,
        cost: np.ndarray,
        limit: float,
    ) -> tuple[float, float, float, list[int]] | None:
        lb = sig + p
        keep = np.flatnonzero(np.isfinite(lb) & (lb <= limit))
        order = keep[np.lexsort((gs[keep], cost[keep], lb[keep]))]
        exact: list[tuple[float, float, int, float]] = []  # (end, cost, g, start)
        node_sets: dict[tuple[int, float], list[tuple]] = {}
        for i in order.tolist():
            key = (float(lb[i]), float(cost[i]), int(gs[i]))
            if exact and exact[0][:3] <= key:
                e, c, g, s = exact[0]
                return e, c, s, [g]
            g, pg, s = int(gs[i]), float(p[i]), float(sig[i])
            n = int(self.f.gpu_node[g])
            if self.node_fits(t, n, s, s + pg):
                return s + pg, float(cost[i]), s, [g]
            if (n, pg) not in node_sets:
                node_sets[n, pg] = self.node_starts(t, n, pg, est)
            both = _intersect(
                self.gpus.starts(g, self.gpu_dem(t), self.gpu_cap[:, g], pg, est), node_sets[n, pg]
            )
            if both and both[0][0] + pg <= limit:
                heapq.heappush(exact, (both[0][0] + pg, float(cost[i]), g, both[0][0]))
        if exact:
            e, c, g, s = exact[0]
            return e, c, s, [g]
        return None

    def _gang(
        self,
        t: int,
        est: float,
        gs: np.ndarray,
        p: np.ndarray,
        sig: np.ndarray,
        cost: np.ndarray,
        limit: float,
    ) -> tuple[float, float, float, list[int]] | None:
        f = self.f
        k = int(f.gang[t])
        key = (
            f.gpu_node[gs] * self.n_types + np.maximum(f.gpu_type[gs], 0)
            if f.same_type[t]
            else f.gpu_node[gs]
        )
        order = np.lexsort((sig, key))
        ks = key[order]
        first = np.r_[True, ks[1:] != ks[:-1]]
        starts = np.flatnonzero(first)
        sizes = np.diff(np.r_[starts, ks.size])
        big = sizes >= k
        # Lower bound per group: its k-th earliest GPU window plus its shortest duration; cost at
        # least k times its cheapest GPU.
        kth = sig[order[np.minimum(starts + k - 1, ks.size - 1)]]
        lb = np.where(big, kth + np.minimum.reduceat(p[order], starts), np.inf)
        c_lb = k * np.minimum.reduceat(cost[order], starts)
        cand = np.flatnonzero(np.isfinite(lb) & (lb <= limit))
        lbs = list(zip(lb[cand].tolist(), c_lb[cand].tolist(), cand.tolist(), strict=True))
        heapq.heapify(lbs)
        best: tuple[float, float, float, list[int]] | None = None
        while lbs and (best is None or lbs[0][:2] < best[:2]):
            _, _, gi = heapq.heappop(lbs)
            m = order[starts[gi] : starts[gi] + sizes[gi]]
            got = self._gang_on(t, est, gs[m], p[m], sig[m], cost[m], limit)
            if got is not None and (best is None or got[:2] < best[:2]):
                best = got
        return best

    def _gang_on(
        self,
        t: int,
        est: float,
        gs: np.ndarray,
        p: np.ndarray,
        sig: np.ndarray,
        cost: np.ndarray,
        limit: float,
    ) -> tuple[float, float, float, list[int]] | None:
        """Best (end, cost, start, GPUs) of gang t on one node's group of GPUs: for each duration
        level (the slowest class allowed), the earliest common start of k GPUs with the node."""
        f = self.f
        k = int(f.gang[t])
        n = int(f.gpu_node[gs[0]])
        dem = self.gpu_dem(t)
        best: tuple[float, float, float, list[int]] | None = None
        for level in np.unique(p).tolist():
            allowed = np.flatnonzero(p <= level)
            if allowed.size < k:
                continue
            s0 = float(np.sort(sig[allowed])[k - 1])
            if not np.isfinite(s0) or s0 + level > limit or (best is not None and s0 + level > best[0]):
                continue
            fit = [
                i
                for i in allowed.tolist()
                if self.gpus.fits(int(gs[i]), s0, s0 + level, dem, self.gpu_cap[:, gs[i]])
            ]
            s = s0
            if len(fit) < k or not self.node_fits(t, n, s0, s0 + level):
                sets = [
                    self.gpus.starts(int(gs[i]), dem, self.gpu_cap[:, gs[i]], level, est) for i in allowed
                ]
                both = _intersect(_at_least(sets, k), self.node_starts(t, n, level, est))
                if not both:
                    continue
                s = both[0][0]
                fit = [
                    i for i, st in zip(allowed.tolist(), sets, strict=True) if any(a <= s <= b for a, b in st)
                ]
            if s + level > limit:
                continue
            chosen = sorted(fit, key=lambda i: (cost[i], gs[i]))[:k]
            got = (s + level, float(cost[chosen].sum()), s, [int(gs[i]) for i in chosen])
            if best is None or got[:2] < best[:2]:
                best = got
        return best

    def place(self, t: int, start: float, end: float, gpus: list[int]) -> None:
        f = self.f
        self.assign[t, : len(gpus)] = gpus
        self.start[t], self.end[t] = start, end
        dem = self.gpu_dem(t)
        if dem.any():
            for g in gpus:
                self.gpus.add(g, start, end, dem)
        n = int(f.gpu_node[gpus[0]])
        node_dem = np.array([f.cpu[t], f.ram[t]])
        if node_dem.any():
            self.nodes.add(n, start, end, node_dem)
        grp = int(f.spread[t])
        if grp >= 0:
            r = self.spread_row.get((grp, n))
            if r is None:
                r = self.spread_row[grp, n] = self.spread.add_row()
            self.spread.add(r, start, end, np.ones(1))
        self.used_gpu[gpus] = True
        self.used_node[n] = True
        if f.dataset[t] >= 0:
            self.ds_on.add((int(f.dataset[t]), n))
        self.makespan = max(self.makespan, end)

    def time_cost(self, t: int, end: float) -> float:
        """How much placing t to end at `end` adds to the time terms."""
        sp = self.sp
        w = float(sp.weight[t])
        return (
            sp.w_makespan * max(0.0, end - self.makespan)
            + sp.w_completion * w * end
            + sp.w_tardiness * w * max(0.0, end - float(sp.due[t]))
        )


def rule_keys(sp: ScheduleProgram, rule: str) -> np.ndarray:
    """float [T]: each task's key under `rule` (module docstring); smaller goes first."""
    p_min = fastest(sp)
    if rule == "spt":
        return p_min
    if rule == "edd":
        return np.minimum(sp.due, sp.deadline)
    if rule == "fifo":
        return np.array(sp.release, dtype=np.float64)
    if rule in ("wspt", "area"):
        key = np.full(sp.n_tasks, np.inf)
        pos = sp.weight > 0
        size = dominant_share(sp)[pos] if rule == "area" else 1.0
        key[pos] = p_min[pos] * size / sp.weight[pos]
        return key
    if rule == "cp":
        q = np.where(np.isfinite(p_min), p_min, 0.0)
        tail = q.copy()
        succ: list[list[int]] = [[] for _ in range(sp.n_tasks)]
        for a, b in sp.pred.reshape(-1, 2).tolist():
            succ[a].append(b)
        for t in topological_order(sp.n_tasks, sp.pred)[::-1].tolist():
            for b in succ[t]:
                tail[t] = max(tail[t], q[t] + tail[b])
        return -tail
    raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")


def dominant_share(sp: ScheduleProgram) -> np.ndarray:
    """float [T]: :math:`a_t`, the task's largest share of the largest node's GPUs, CPU or host
    memory (module docstring, ``wspt``), at least 1e-9 so that p_t still orders demand-free tasks."""
    f = sp.fleet
    gpus_per_node = np.bincount(f.gpu_node[~f.host], minlength=f.n_nodes)
    a = np.where(f.cpu_only, 0.0, f.gang * f.share) / max(float(gpus_per_node.max(initial=0)), 1.0)
    for demand, cap in ((f.cpu, f.node_cpu), (f.ram, f.node_ram)):
        fin = cap[np.isfinite(cap)]
        if fin.size and fin.max() > 0:
            a = np.maximum(a, demand / float(fin.max()))
    return np.maximum(a, 1e-9)


def rule_order(sp: ScheduleProgram, rule: str) -> np.ndarray:
    """int [T]: the tasks in the order `rule` takes them (effective priority first, then the
    rule's key, then the task index), as both schemes do."""
    return np.lexsort((np.arange(sp.n_tasks), rule_keys(sp, rule), -effective_priority(sp)))


def rules_for(sp: ScheduleProgram) -> tuple[str, ...]:
    """`RULES` in the order suited to the objective (module docstring), each distinct: a rule that
    takes the tasks in the very order of an earlier one is left out (it would give the same plan)."""
    if sp.w_tardiness > 0:
        first: tuple[str, ...] = ("edd",)
    elif sp.w_completion > 0 and sp.w_makespan == 0:
        first = ("wspt", "spt", "area")
    else:
        first = ("cp",)
    out: list[str] = []
    seen: list[np.ndarray] = []
    for rule in (*first, *(r for r in RULES if r not in first)):
        order = rule_order(sp, rule)
        if not any(np.array_equal(order, o) for o in seen):
            out.append(rule)
            seen.append(order)
    return tuple(out)


def effective_priority(sp: ScheduleProgram) -> np.ndarray:
    """A task's priority, or the highest of its descendants' when higher."""
    pr = np.array(sp.fleet.priority, dtype=np.int64)
    succ: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        succ[a].append(b)
    for t in topological_order(sp.n_tasks, sp.pred)[::-1].tolist():
        for b in succ[t]:
            pr[t] = max(pr[t], pr[b])
    return pr


def list_schedule(
    sp: ScheduleProgram, rule: str = "cp", deadline: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One serial list schedule by `rule` (module docstring): (assign [T, K], start [T], NaN where
    left out). Past `deadline` (time.monotonic()) the tasks not yet placed are left out: the plan
    is then partial, and `violations` names any required one."""
    f = sp.fleet
    keys = rule_keys(sp, rule)
    prio = effective_priority(sp)
    preds: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    succ: list[list[int]] = [[] for _ in range(sp.n_tasks)]
    for a, b in sp.pred.reshape(-1, 2).tolist():
        preds[b].append(a)
        succ[a].append(b)
    waiting = np.array([len(x) for x in preds], dtype=np.int64)
    ready = [(-int(prio[t]), float(keys[t]), t) for t in np.flatnonzero(waiting == 0).tolist()]
    heapq.heapify(ready)
    st = _State(sp)
    need = must_place(sp)  # required tasks and their ancestors: never left out by choice
    dropped = np.zeros(sp.n_tasks, dtype=bool)
    taken = 0
    while ready:
        taken += 1
        if deadline is not None and taken % 64 == 0 and time.monotonic() > deadline:
            break
        _, _, t = heapq.heappop(ready)
        for b in succ[t]:
            waiting[b] -= 1
            if waiting[b] == 0:
                heapq.heappush(ready, (-int(prio[b]), float(keys[b]), b))
        if any(dropped[a] for a in preds[t]):
            dropped[t] = True
            continue
        est = max([float(sp.release[t]), *(float(st.end[a]) for a in preds[t])])
        spot = st.best_spot(t, est)
        if spot is None:
            dropped[t] = True
            continue
        end, cost, start, gpus = spot
        extra = cost + float(f.transfer_each[t]) + st.time_cost(t, end)
        if not need[t] and extra > f.penalty[t] + float(f.move_cost[t] * f.gang[t] * (f.current[t, 0] >= 0)):
            dropped[t] = True
            continue
        st.place(t, start, end, gpus)
    return st.assign, st.start


def rank(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray) -> tuple[int, float]:
    """How schedules compare: fewest broken rules (required tasks left out), then least objective."""
    return len(violations(sp, assign, start)), objective(sp, assign, start)


Scheme = Callable[[ScheduleProgram, str, "float | None"], tuple[np.ndarray, np.ndarray]]


def best_of(
    sp: ScheduleProgram,
    rules: Sequence[str] = RULES,
    scheme: Scheme | None = None,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The best schedule of `scheme` (default: the serial list schedule) over `rules`, by `rank`."""
    run = list_schedule if scheme is None else scheme
    best: tuple[tuple[int, float], np.ndarray, np.ndarray] | None = None
    for rule in rules:
        assign, start = run(sp, rule, deadline)
        key = rank(sp, assign, start)
        if best is None or key < best[0]:
            best = (key, assign, start)
    if best is None:
        raise ValueError("best_of needs at least one rule")
    return best[1], best[2]


__all__ = [
    "RULES",
    "best_of",
    "dominant_share",
    "effective_priority",
    "list_schedule",
    "rank",
    "rule_keys",
    "rule_order",
    "rules_for",
]

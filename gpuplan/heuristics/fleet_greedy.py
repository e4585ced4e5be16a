"""Greedy for the fleet program: tasks in priority-then-size order, each to its cheapest feasible spot.

Every candidate GPU (or node, for a gang) is scored by the objective it adds (cost, migration,
dataset copy, a newly used GPU or node, a higher peak utilization) and ties go to the tightest fit
(best fit: fullest GPU, then the node with the fewest free GPUs and least CPU left), which keeps
whole GPUs and whole nodes free for the large tasks and gangs that come later. Tasks already
running are first kept where they are when they still fit, so a re-plan moves nothing without
need. Vectorized over GPUs with numpy. A spot index keeps each kind of task's candidates between
searches (`FleetState._indexed_choice`): only the nodes changed since are looked at again, and of
the nodes that never held a task and are alike only the first, so a pass over a large fleet does
not look at every GPU per task; it picks exactly the spot the full search would.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gpuplan.interrupt import past
from gpuplan.program.fleet import NONE, FleetProgram

_EPS = 1e-9


class FleetState:
    """Running loads of a partial assignment, updated task by task."""

    def __init__(self, prog: FleetProgram) -> None:
        self.p = prog
        self.assign = prog.empty_assign()
        self.load = np.zeros(prog.n_gpus)
        self.mem = np.zeros(prog.n_gpus)
        self.count = np.zeros(prog.n_gpus, dtype=np.int64)
        self.cpu = np.zeros(prog.n_nodes)
        self.ram = np.zeros(prog.n_nodes)
        self.node_tasks = np.zeros(prog.n_nodes, dtype=np.int64)
        self.spread: set[tuple[int, int]] = set()
        self.copies: dict[tuple[int, int], int] = {}
        self.peak = 0.0
        self.is_gpu = prog.gpu_ok & ~prog.host  # usable GPUs (host slots are none)
        self.free_whole = np.bincount(prog.gpu_node[self.is_gpu], minlength=prog.n_nodes).astype(np.int64)
        self.node_gpus = np.maximum(self.free_whole * prog.capacity, 1e-9)
        self.node_free = self.free_whole * prog.capacity  # free primary capacity per node
        self.balance = 1.0
        self.direct = 0  # tasks the improvement moves placed without moving anything
        # the GPUs (and host slots) sorted by node: node n's run starts at run_start[n], run_len[n] long
        self.by_node = np.argsort(prog.gpu_node, kind="stable")
        self.run_len = np.bincount(prog.gpu_node, minlength=prog.n_nodes)
        self.run_start = np.cumsum(self.run_len) - self.run_len
        # The spot index (`_indexed_choice`): nodes that never held a task are alike when their GPUs
        # and limits are, so only the first of each such family is searched; what changed on which
        # node is logged, so a kind of task's candidates are brought up to date node by node.
        self.changed: list[int] = []  # nodes, in the order their state changed
        self.loosened: list[bool] = []  # per change: room may have grown (a task off, a new searched node)
        self.untouched = np.ones(prog.n_nodes, dtype=bool)
        self.family, self.family_nodes = _node_families(prog, self.by_node, self.run_start, self.run_len)
        self.family_next = np.zeros(len(self.family_nodes), dtype=np.int64)
        self.is_rep = np.zeros(prog.n_nodes, dtype=bool)
        self.is_rep[[nodes[0] for nodes in self.family_nodes if nodes.size]] = True
        self.kinds: OrderedDict[int, _KindSpots] = OrderedDict()
        self.stale = np.zeros(prog.n_nodes, dtype=bool)  # scratch: nodes changed since a kind looked
        self.indexed = INDEXED

    # --- feasibility -----------------------------------------------------------------------
    def node_ok(self, t: int) -> np.ndarray:
        """bool [N]: nodes with CPU, RAM and spread room for task t."""
        p = self.p
        ok = (self.cpu + p.cpu[t] <= p.node_cpu * (1 + _EPS) + _EPS) & (
            self.ram + p.ram[t] <= p.node_ram * (1 + _EPS) + _EPS
        )
        if p.spread[t] >= 0:
            grp = p.spread[t]
            for g, n in self.spread:
                if g == grp:
                    ok[n] = False
        return ok

    def _node_ok_among(self, t: int, among: np.ndarray) -> np.ndarray:
        """`node_ok` on the nodes `among` only (bool, one per node of `among`)."""
        p = self.p
        ok = (self.cpu[among] + p.cpu[t] <= p.node_cpu[among] * (1 + _EPS) + _EPS) & (
            self.ram[among] + p.ram[t] <= p.node_ram[among] * (1 + _EPS) + _EPS
        )
        if p.spread[t] >= 0:
            grp = p.spread[t]
            taken = np.array([n for g, n in self.spread if g == grp], dtype=np.int64)
            ok &= ~np.isin(among, taken)
        return ok

    def gpu_ok(self, t: int, node_ok: np.ndarray) -> np.ndarray:
        """bool [G]: GPUs that can take (one GPU's worth of) task t now."""
        return node_ok[self.p.gpu_node] & self._fits(t, slice(None))

    def _fits(self, t: int, gpus: np.ndarray | slice) -> np.ndarray:
        """bool, one per GPU of `gpus`: eligible for task t, with room for one GPU's worth of it."""
        p = self.p
        ok = np.array(p.eligible(t)[gpus])  # a copy: the eligible rows are cached, read-only
        if not p.horizon and (p.gang[t] > 1 or p.share[t] >= 1.0):
            ok &= self.count[gpus] == 0  # side by side a whole GPU is exclusive (the share sum says so too)
        ok &= self.load[gpus] + p.load_c[t, p.gpu_class[gpus]] <= p.capacity * (1 + _EPS) + _EPS
        if not p.horizon:
            ok &= self.mem[gpus] + p.gpu_mem[t] <= p.mem_cap[gpus] * (1 + _EPS) + _EPS
        return ok

    def fits_on(self, t: int, gpus: np.ndarray) -> bool:
        """Task t fits on `gpus` (all on one node) as things stand: the node's CPU, host memory and
        spread room (`node_ok`), each GPU's room (`_fits`), and one type where it asks for one."""
        p = self.p
        if p.same_type[t] and np.unique(p.gpu_type[gpus]).size > 1:
            return False
        node = np.array([p.gpu_node[gpus[0]]], dtype=np.int64)
        return bool(self._node_ok_among(t, node)[0] and self._fits(t, gpus).all())

    def candidates(self, t: int, among: np.ndarray | None = None) -> np.ndarray:
        """int [*]: the GPUs `gpu_ok` allows for task t, sought only on nodes that can hold it: CPU,
        host memory and spread room (`node_ok`), free primary capacity for the gang at its lightest
        eligible load, and, for a whole-GPU task, k idle GPUs. As the fleet fills, fewer nodes are
        looked at (same answer as `gpu_ok` over every GPU, at a fraction of the cost). `among`: only
        these nodes (int, ascending)."""
        p = self.p
        if among is None:
            nodes = self.node_ok(t)
            at: np.ndarray | slice = slice(None)
        else:
            nodes = self._node_ok_among(t, among)
            at = among
        k = int(p.gang[t])
        if not p.cpu_only[t]:
            elig = p.eligible_c[t]
            lightest = float(p.load_c[t][elig].min(initial=np.inf))
            nodes &= self.node_free[at] + (1 + p.capacity) * 1e-9 >= k * lightest
            if not p.horizon and (k > 1 or p.share[t] >= 1.0):
                nodes &= self.free_whole[at] >= k
        chosen = np.flatnonzero(nodes) if among is None else among[nodes]
        lengths = self.run_len[chosen]
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        first = np.repeat(self.run_start[chosen] - np.cumsum(lengths) + lengths, lengths)
        gpus = self.by_node[first + np.arange(total)]
        return np.sort(gpus[self._fits(t, gpus)])

    # --- scoring -----------------------------------------------------------------------------
    def gpu_score(self, t: int, gpus: np.ndarray) -> np.ndarray:
        """Objective added per GPU of task t (node-level extras are added by the caller)."""
        return self.p.cost_c[t, self.p.gpu_class[gpus]] + self.gpu_extra(t, gpus)

    def gpu_extra(self, t: int, gpus: np.ndarray) -> np.ndarray:
        """The part of `gpu_score` beyond the GPU class's cost: migration, a newly used GPU, a higher
        peak utilization."""
        p = self.p
        s = np.zeros(gpus.shape[0])
        if p.current[t, 0] >= 0:
            s += np.where(np.isin(gpus, p.current[t]), 0.0, p.move_cost[t])
        if p.w_gpus:
            s += p.w_gpus * ((self.count[gpus] == 0) & ~p.host[gpus])
        if p.w_balance:
            util = (self.load[gpus] + p.load_c[t, p.gpu_class[gpus]]) / p.capacity
            s += p.w_balance * np.maximum(util - self.peak, 0.0)
        return s

    def node_extra(self, t: int, nodes: np.ndarray) -> np.ndarray:
        p = self.p
        s = np.zeros(nodes.shape[0])
        if p.w_nodes:
            s += p.w_nodes * (self.node_tasks[nodes] == 0)
        d = p.dataset[t]
        if d >= 0 and p.dataset_charge[d]:
            s += p.dataset_charge[d] * np.array([(d, int(n)) not in self.copies for n in nodes])
        return s

    def fit_key(self, t: int, gpus: np.ndarray) -> np.ndarray:
        """Tie-breaker (smaller is better): the tightest GPU, on the node whose free CPU and host
        memory stay in proportion to its free GPU capacity. Keeping nodes balanced stops CPU-hungry
        tasks from stranding the GPUs of CPU-poor nodes (what sinks plain best fit on real traces)."""
        p = self.p
        if p.cpu_only[t]:
            return self.host_fit_key(t, gpus)
        add = p.load_c[t, p.gpu_class[gpus]]
        room = (p.capacity - self.load[gpus] - add) / p.capacity
        nodes = p.gpu_node[gpus]
        free_gpu = (self.node_free[nodes] - add * p.gang[t]) / self.node_gpus[nodes]
        key = room.copy()
        for cap, used, need in ((p.node_cpu, self.cpu, p.cpu[t]), (p.node_ram, self.ram, p.ram[t])):
            c = cap[nodes]
            finite = np.isfinite(c) & (c > 0)
            left = np.where(finite, (c - used[nodes] - need) / np.where(finite, c, 1.0), free_gpu)
            key += self.balance * np.abs(left - free_gpu)
        return key

    def host_fit_key(self, t: int, slots: np.ndarray) -> np.ndarray:
        """Tie-breaker for a CPU-only task over host slots (smaller is better): the node whose CPU
        and host memory left come closest to (or stay) in proportion to its free GPU capacity, by
        the change in fit_key's balance term (a GPU-less node, or one whose GPUs are full, gains
        the most), plus the fraction of its CPU and memory left (best fit)."""
        p = self.p
        nodes = p.gpu_node[slots]
        free_gpu = self.node_free[nodes] / self.node_gpus[nodes]
        key = np.zeros(slots.shape[0])
        for cap, used, need in ((p.node_cpu, self.cpu, p.cpu[t]), (p.node_ram, self.ram, p.ram[t])):
            c = cap[nodes]
            finite = np.isfinite(c) & (c > 0)
            c = np.where(finite, c, 1.0)
            before = np.where(finite, (c - used[nodes]) / c, free_gpu)
            after = np.where(finite, (c - used[nodes] - need) / c, free_gpu)
            key += np.where(finite, after, 1.0)
            key += self.balance * (np.abs(after - free_gpu) - np.abs(before - free_gpu))
        return key

    # --- moves -------------------------------------------------------------------------------
    def place(self, t: int, gpus: np.ndarray) -> None:
        p = self.p
        gpus = np.asarray(gpus, dtype=np.int64)
        n = int(p.gpu_node[gpus[0]])
        self.assign[t, : gpus.size] = gpus
        was_empty = (self.count[gpus] == 0) & self.is_gpu[gpus]
        self.load[gpus] += p.load_c[t, p.gpu_class[gpus]]
        self.node_free[n] -= float(p.load_c[t, p.gpu_class[gpus]].sum())
        self.mem[gpus] += p.gpu_mem[t]
        self.count[gpus] += 1
        self.free_whole[n] -= int(was_empty.sum())
        self.cpu[n] += p.cpu[t]
        self.ram[n] += p.ram[t]
        self.node_tasks[n] += 1
        self._changed(n, False)
        if p.spread[t] >= 0:
            self.spread.add((int(p.spread[t]), n))
        if p.dataset[t] >= 0:
            key = (int(p.dataset[t]), n)
            self.copies[key] = self.copies.get(key, 0) + 1
        self.peak = max(self.peak, float(self.load[gpus].max()) / p.capacity)

    def remove(self, t: int) -> None:
        p = self.p
        row = self.assign[t]
        gpus = row[row >= 0]
        if gpus.size == 0:
            return
        n = int(p.gpu_node[gpus[0]])
        self.load[gpus] -= p.load_c[t, p.gpu_class[gpus]]
        self.node_free[n] += float(p.load_c[t, p.gpu_class[gpus]].sum())
        self.mem[gpus] -= p.gpu_mem[t]
        self.count[gpus] -= 1
        self.free_whole[n] += int(((self.count[gpus] == 0) & self.is_gpu[gpus]).sum())
        self.cpu[n] -= p.cpu[t]
        self.ram[n] -= p.ram[t]
        self.node_tasks[n] -= 1
        self._changed(n, True)
        if p.spread[t] >= 0:
            self.spread.discard((int(p.spread[t]), n))
        if p.dataset[t] >= 0:
            key = (int(p.dataset[t]), n)
            self.copies[key] -= 1
            if not self.copies[key]:
                del self.copies[key]
        self.assign[t] = NONE
        if p.w_balance:
            self.peak = float(self.load.max(initial=0.0)) / p.capacity

    def _changed(self, n: int, loosened: bool) -> None:
        """Log a change of node n's state; the first change of a family's searched node hands that
        role to the family's next untouched node."""
        self.changed.append(n)
        self.loosened.append(loosened)
        if self.untouched[n]:
            self.untouched[n] = False
            if self.is_rep[n]:
                self.is_rep[n] = False
                f = self.family[n]
                nodes = self.family_nodes[f]
                i = self.family_next[f]
                while i < nodes.size and not self.untouched[nodes[i]]:
                    i += 1
                self.family_next[f] = i
                if i < nodes.size:
                    self.is_rep[nodes[i]] = True
                    self.changed.append(int(nodes[i]))
                    self.loosened.append(True)

    def best_spot(self, t: int, on: int | None = None) -> np.ndarray | None:
        """The GPUs task t should take now (on node `on` only, when given), or None when it fits
        nowhere."""
        p = self.p
        if on is None and self.indexed and p.current[t, 0] < 0 and not p.w_balance:
            cand, extra, fit = self._indexed_choice(t)
            if cand.size == 0:
                return None
            return self._choose(t, cand, p.cost_c[t, p.gpu_class[cand]] + extra, fit)
        cand = self.candidates(t) if on is None else self.candidates(t, np.array([on], dtype=np.int64))
        if cand.size == 0:
            return None
        extra = self.gpu_extra(t, cand)
        if p.gang[t] == 1:
            extra = extra + self.node_extra(t, p.gpu_node[cand])
        return self._choose(t, cand, p.cost_c[t, p.gpu_class[cand]] + extra, self.fit_key(t, cand))

    def _indexed_choice(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Task t's candidate GPUs with their scores beyond the class cost (node extras included for
        a single GPU) and fit keys, kept per kind of task (`kind_ids`: what the candidates, extras
        and keys depend on) and brought up to date on the nodes changed since that kind last looked.
        Only the first untouched node of each family is searched (its twins would score the same and
        lose the tie to it). Same answer as the full search."""
        key = int(kind_ids(self.p)[t])
        spots = self.kinds.get(key)
        if spots is None or len(self.changed) - spots.seen > self.p.n_nodes:
            spots = self._spots_on(t, np.flatnonzero(~self.untouched | self.is_rep))
        elif len(self.changed) > spots.seen:
            # Nodes that only took tasks on since can only have lost room: those that were no
            # candidates stay none; the others, and those that may have gained room, are searched.
            changed = np.asarray(self.changed[spots.seen :], dtype=np.int64)
            nodes = np.unique(changed)
            self.stale[nodes] = True
            hit = self.stale[spots.ints[1]]
            self.stale[nodes] = False
            keep = ~hit
            redo = np.union1d(
                spots.ints[1][hit], changed[np.asarray(self.loosened[spots.seen :], dtype=bool)]
            )
            fresh = self._spots_on(t, redo[~self.untouched[redo] | self.is_rep[redo]])
            spots = _KindSpots(
                len(self.changed),
                np.concatenate([spots.ints[:, keep], fresh.ints], axis=1),
                np.concatenate([spots.floats[:, keep], fresh.floats], axis=1),
            )
        self.kinds[key] = spots
        self.kinds.move_to_end(key)
        while len(self.kinds) > KIND_INDEX_SIZE:
            self.kinds.popitem(last=False)
        return spots.ints[0], spots.floats[0], spots.floats[1]

    def _spots_on(self, t: int, nodes: np.ndarray) -> _KindSpots:
        """Task t's candidates on `nodes` with their extras and fit keys (`_indexed_choice`)."""
        p = self.p
        cand = self.candidates(t, nodes) if nodes.size else np.zeros(0, dtype=np.int64)
        extra = self.gpu_extra(t, cand)
        fit = self.fit_key(t, cand)
        if p.gang[t] == 1 and cand.size > 1:
            extra = extra + self.node_extra(t, p.gpu_node[cand])
            # A GPU just after one of its node and class with the same extras and fit key can never
            # win over it (the tie goes to the lower GPU): only the first of such a run is kept.
            node, cls = p.gpu_node[cand], p.gpu_class[cand]
            twin = (
                (node[1:] == node[:-1])
                & (cls[1:] == cls[:-1])
                & (extra[1:] == extra[:-1])
                & (fit[1:] == fit[:-1])
            )
            keep = np.r_[True, ~twin]
            cand, extra, fit = cand[keep], extra[keep], fit[keep]
        elif p.gang[t] == 1:
            extra = extra + self.node_extra(t, p.gpu_node[cand])
        return _KindSpots(len(self.changed), np.stack([cand, p.gpu_node[cand]]), np.stack([extra, fit]))

    def _choose(self, t: int, cand: np.ndarray, score: np.ndarray, fit: np.ndarray) -> np.ndarray | None:
        """The spot among candidate GPUs `cand` (any order) with their scores and fit keys: the
        lowest objective added, ties to the tightest fit, then the lowest GPU (or node) index."""
        p = self.p
        k = int(p.gang[t])
        if k == 1:
            best = score.min()
            close = np.flatnonzero(score <= best + 1e-9 * max(1.0, abs(best)))
            f = fit[close]
            tight = close[f == f.min()]
            return cand[[tight[np.argmin(cand[tight])]]]
        # Gang: per node (or node and type), the k cheapest free GPUs.
        group = (
            p.gpu_node[cand] * len(p.type_names) + p.gpu_type[cand] if p.same_type[t] else p.gpu_node[cand]
        )
        order = np.lexsort((cand, fit, score, group))
        cand, score, group = cand[order], score[order], group[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        sizes = np.diff(np.r_[starts, group.size])
        good = starts[sizes >= k]
        if good.size == 0:
            return None
        total = score[good[:, None] + np.arange(k)].sum(axis=1)
        total = total + self.node_extra(t, p.gpu_node[cand[good]])
        # Tie-break: nodes with the fewest free whole GPUs left after the gang (keep big nodes whole).
        tie = self.free_whole[p.gpu_node[cand[good]]] - k + 0.0
        best = total.min()
        close = np.flatnonzero(total <= best + 1e-9 * max(1.0, abs(best)))
        s = good[close[np.argmin(tie[close])]]
        return cand[s : s + k]


#: The spot index is on (`FleetState.indexed`); off, every search looks at every node.
INDEXED = True
#: Kinds of task whose candidates the spot index keeps at once (the least recently used go first).
KIND_INDEX_SIZE = 64


@dataclass(frozen=True)
class _KindSpots:
    """One kind of task's candidate GPUs, as of `seen` logged node changes (`_indexed_choice`)."""

    seen: int
    ints: np.ndarray  # int64 [2, M]: the GPUs, their nodes
    floats: np.ndarray  # float64 [2, M]: their score extras, fit keys


def kind_ids(p: FleetProgram) -> np.ndarray:
    """int [T]: tasks with one id have the same candidates, score extras (beyond their class costs)
    and fit keys in any state: same gang, share, memory, CPU, host memory, type rule, CPU-only,
    spread group, dataset, eligible classes and loads. Computed once per program."""
    ids = p.__dict__.get("_kind_ids")
    if ids is None:
        table = np.column_stack(
            [p.gang, p.share, p.gpu_mem, p.cpu, p.ram, p.same_type, p.cpu_only, p.spread, p.dataset,
             p.eligible_c, p.load_c]
        ).astype(np.float64)  # fmt: skip
        ids = np.unique(table, axis=0, return_inverse=True)[1].reshape(-1) if p.n_tasks else np.zeros(0, int)
        p.__dict__["_kind_ids"] = ids
    return ids


def _node_families(
    p: FleetProgram, by_node: np.ndarray, run_start: np.ndarray, run_len: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Nodes alike while empty: same GPUs (class, usable, memory, further capacities) in the same
    order, same CPU and host memory. The family of each node, and each family's nodes ascending."""
    index: dict[bytes, int] = {}
    family = np.empty(p.n_nodes, dtype=np.int64)
    for n in range(p.n_nodes):
        run = by_node[run_start[n] : run_start[n] + run_len[n]]
        key = b"".join(
            (
                p.gpu_class[run].tobytes(),
                p.gpu_ok[run].tobytes(),
                p.mem_cap[run].tobytes(),
                p.extra_cap[:, run].tobytes() if p.extra_cap.size else b"",
                np.array([p.node_cpu[n], p.node_ram[n]]).tobytes(),
            )
        )
        family[n] = index.setdefault(key, len(index))
    order = np.argsort(family, kind="stable")
    bounds = np.cumsum(np.bincount(family, minlength=len(index)))[:-1]
    return family, np.split(order, bounds)


def task_order(prog: FleetProgram, how: str = "dominant", late: np.ndarray | None = None) -> np.ndarray:
    """Priority first, then gangs, then the least flexible (fewest eligible GPUs, so tasks pinned to
    scarce types find them free), then the hardest to fit: 'dominant' by the largest share of the
    average GPU, CPU or host memory per GPU the task takes; 'gpu' by GPU share. 'density' puts
    required tasks first, then optional ones by drop penalty per dominant size, highest first (the
    knapsack rule: where 'placed' counts tasks, the small ones first), gangs and flexibility
    breaking ties. Tasks marked `late`
    (bool [T]) go after all others of their priority (e.g. those a packing LP leaves out); CPU-only
    tasks go after the GPU tasks of their priority (they may use any node, GPU-less ones too, and
    take the CPU and memory the GPU tasks leave)."""
    size = prog.dominant_size() if how in ("dominant", "density") else prog.gang * prog.share
    late = np.zeros(prog.n_tasks, dtype=bool) if late is None else late
    flexibility = prog.eligible_c @ prog.usable_per_class()
    if how == "density":
        density = np.where(prog.optional, prog.penalty / np.maximum(size, 1e-12), np.inf)
        return np.lexsort((-size, flexibility, -prog.gang, -density, prog.cpu_only, late, -prog.priority))
    return np.lexsort((-size, flexibility, -prog.gang, prog.cpu_only, late, -prog.priority))


def fleet_greedy(
    prog: FleetProgram,
    order: np.ndarray | None = None,
    balance: float = 1.0,
    deadline: float | None = None,
) -> FleetState:
    """One greedy pass; returns the state (its `assign` may leave required tasks unplaced). At the
    `deadline` (time.monotonic()) it stops placing, so the time limit holds at any size."""
    st = FleetState(prog)
    st.balance = balance
    order = task_order(prog) if order is None else order
    # Running tasks stay put first when they still fit (checked on their own GPUs and node only).
    running = order[prog.current[order, 0] >= 0]
    for i, t in enumerate(running):
        if deadline is not None and i % 64 == 0 and time.monotonic() >= deadline:
            return st
        cur = prog.current[t]
        cur = cur[cur >= 0]
        if cur.size == prog.gang[t]:
            nodes = np.unique(prog.gpu_node[cur])
            one_type = not prog.same_type[t] or np.unique(prog.gpu_type[cur]).size == 1
            if nodes.size == 1 and one_type and st._node_ok_among(t, nodes)[0] and np.all(st._fits(t, cur)):
                st.place(t, cur)
    for i, t in enumerate(order):
        if deadline is not None and i % 64 == 0 and time.monotonic() >= deadline:
            break
        if st.assign[t, 0] >= 0:
            continue
        spot = st.best_spot(t)
        if spot is not None:
            # An optional task is placed only when that lowers the objective.
            if prog.optional[t]:
                added = float(st.gpu_score(t, spot).sum() + st.node_extra(t, prog.gpu_node[spot[:1]])[0])
                if added + prog.transfer_each[t] >= prog.penalty[t] + prog.move_cost[t] * prog.gang[t] * (
                    prog.current[t, 0] >= 0
                ):
                    continue
            st.place(t, spot)
    return st


def _left_out(st: FleetState, mask: np.ndarray, deadline: float) -> Iterator[int]:
    """Left-out tasks within `mask`, most valuable first, that still do not fit as things stand
    (those that do are placed on the way, counted in `st.direct`); stops at the deadline."""
    p = st.p
    todo = np.flatnonzero((st.assign[:, 0] < 0) & mask & p.eligible_c.any(axis=1))
    for t in todo[np.argsort(-p.penalty[todo], kind="stable")]:
        if past(deadline):
            return
        if st.assign[t, 0] >= 0:
            continue
        spot = st.best_spot(t)
        if spot is not None:
            st.place(t, spot)
            st.direct += 1
            continue
        yield int(t)


def _spot_on(st: FleetState, t: int, node: int) -> np.ndarray | None:
    """The best GPUs for task t on one node, or None."""
    return st.best_spot(t, on=node)


def eject_improve(st: FleetState, deadline: float, max_nodes: int = 12) -> int:
    """Place left-out tasks by moving one blocking task elsewhere (an ejection chain of length 2).

    For each unplaced task (most valuable first) and each node where only CPU, host memory or one
    GPU's room is missing, try taking off one task that frees enough, placing the left-out task
    there and the ejected one anywhere else; keep the move when the objective drops. Returns the
    number of tasks placed.
    """
    p = st.p
    st.direct = placed_count = 0
    for t in _left_out(st, p.gang == 1, deadline):
        on = st.assign[:, 0] >= 0
        node_of = np.where(on, p.gpu_node[np.where(on, st.assign[:, 0], 0)], NONE)
        elig = p.eligible(t)
        add = p.load_c[t, p.gpu_class]
        room_ok = elig & (st.load + add <= p.capacity * (1 + _EPS) + _EPS)
        if not p.horizon:
            room_ok &= st.mem + p.gpu_mem[t] <= p.mem_cap * (1 + _EPS) + _EPS
        if p.share[t] >= 1.0 and not p.horizon:
            room_ok &= st.count == 0
        nodes = np.unique(p.gpu_node[room_ok])
        if nodes.size == 0:
            nodes = np.unique(p.gpu_node[elig])
        cpu_def = st.cpu[nodes] + p.cpu[t] - p.node_cpu[nodes]
        ram_def = st.ram[nodes] + p.ram[t] - p.node_ram[nodes]
        nodes = nodes[np.argsort(np.maximum(cpu_def / max(p.cpu[t], 1e-9), ram_def / max(p.ram[t], 1e-9)))][
            :max_nodes
        ]
        done = False
        for n in nodes:
            need_cpu = st.cpu[n] + p.cpu[t] - p.node_cpu[n]
            need_ram = st.ram[n] + p.ram[t] - p.node_ram[n]
            victims = np.flatnonzero(node_of == n)
            victims = victims[(p.gang[victims] == 1) & (p.cpu[victims] >= need_cpu - _EPS)]
            victims = victims[p.ram[victims] >= need_ram - _EPS]
            if not room_ok[p.gpu_node == n].any():
                # No GPU has room: the victim must sit on a GPU that then has room.
                g_v = st.assign[victims, 0]
                free_after = st.load[g_v] - p.load_c[victims, p.gpu_class[g_v]] + add[g_v]
                victims = victims[elig[g_v] & (free_after <= p.capacity * (1 + _EPS) + _EPS)]
            for u in victims[np.argsort(p.penalty[victims], kind="stable")][:6]:
                before = p.penalty[t] + 0.0
                old = st.assign[u, : p.gang[u]].copy()
                cost_old = float(st.gpu_score(u, old).sum())
                st.remove(u)
                spot_t = _spot_on(st, t, int(n))
                if spot_t is not None:
                    gain_t = before - float(st.gpu_score(t, spot_t).sum())
                    st.place(t, spot_t)
                    spot_u = st.best_spot(u)
                    if spot_u is not None and gain_t - (float(st.gpu_score(u, spot_u).sum()) - cost_old) > 0:
                        st.place(u, spot_u)
                        placed_count += 1
                        done = True
                        break
                    st.remove(t)
                st.place(u, old)
            if done:
                break
    return placed_count + st.direct


def swap_improve(st: FleetState, deadline: float, max_nodes: int = 8) -> int:
    """Place left-out single-GPU tasks by swapping two placed tasks between nodes first.

    For a left-out task t and a node A where a GPU has room for it but CPU or host memory is short,
    find a task u on A and a task v elsewhere (node B) that can trade GPUs, with v lighter on CPU and
    memory than u by at least the shortfall; trade them and place t on A. Tasks in spread groups,
    datasets or with a current placement are left alone. Returns the number of tasks placed.
    """
    p = st.p
    free_task = (p.gang == 1) & (p.spread < 0) & (p.dataset < 0) & (p.current[:, 0] < 0)
    st.direct = placed_count = 0
    tol = p.capacity * (1 + _EPS) + _EPS
    for t in _left_out(st, p.gang == 1, deadline):
        add = p.load_c[t, p.gpu_class]
        room = p.eligible(t) & (st.load + add <= tol)
        if p.share[t] >= 1.0 and not p.horizon:
            room &= st.count == 0
        nodes = np.unique(p.gpu_node[room])
        if nodes.size == 0:
            continue
        short = np.maximum(st.cpu[nodes] + p.cpu[t] - p.node_cpu[nodes], 0.0)
        short_ram = np.maximum(st.ram[nodes] + p.ram[t] - p.node_ram[nodes], 0.0)
        nodes = nodes[np.argsort(short / max(p.cpu[t], 1e-9) + short_ram / max(p.ram[t], 1e-9))][:max_nodes]
        on = st.assign[:, 0] >= 0
        g_of = np.where(on, st.assign[:, 0], 0)
        n_of = np.where(on, p.gpu_node[g_of], NONE)
        done = False
        for a_node in nodes:
            d_cpu = st.cpu[a_node] + p.cpu[t] - p.node_cpu[a_node]
            d_ram = st.ram[a_node] + p.ram[t] - p.node_ram[a_node]
            us = np.flatnonzero((n_of == a_node) & free_task)
            us = us[(p.cpu[us] >= d_cpu) | (d_cpu <= 0)]
            for u in us[np.argsort(-p.cpu[us])][:8]:
                g_u = g_of[u]
                cls_u = p.gpu_class[g_u]
                vs = on & free_task & (n_of != a_node) & p.eligible_c[:, cls_u]
                vs &= p.cpu - p.cpu[u] <= -d_cpu + _EPS
                vs &= p.ram - p.ram[u] <= -d_ram + _EPS
                vs &= st.load[g_u] - p.load_c[u, cls_u] + p.load_c[:, cls_u] <= tol
                if not p.horizon:
                    vs &= st.mem[g_u] - p.gpu_mem[u] + p.gpu_mem <= p.mem_cap[g_u] * (1 + _EPS) + _EPS
                cand = np.flatnonzero(vs)
                if cand.size == 0:
                    continue
                g_v = g_of[cand]
                b = n_of[cand]
                ok = p.eligible_c[u, p.gpu_class[g_v]] & p.gpu_ok[g_v]
                ok &= st.load[g_v] - p.load_c[cand, p.gpu_class[g_v]] + p.load_c[u, p.gpu_class[g_v]] <= tol
                if not p.horizon:
                    ok &= st.mem[g_v] - p.gpu_mem[cand] + p.gpu_mem[u] <= p.mem_cap[g_v] * (1 + _EPS) + _EPS
                ok &= st.cpu[b] - p.cpu[cand] + p.cpu[u] <= p.node_cpu[b] * (1 + _EPS) + _EPS
                ok &= st.ram[b] - p.ram[cand] + p.ram[u] <= p.node_ram[b] * (1 + _EPS) + _EPS
                cand = cand[ok]
                for v in cand[:4]:
                    gv = int(g_of[v])
                    before = float(
                        st.gpu_score(u, np.array([g_u])).sum() + st.gpu_score(v, np.array([gv])).sum()
                    )
                    st.remove(u)
                    st.remove(v)
                    st.place(v, np.array([g_u]))
                    st.place(u, np.array([gv]))
                    spot_t = _spot_on(st, t, int(a_node))
                    if spot_t is not None:
                        swap_cost = float(
                            st.gpu_score(u, np.array([gv])).sum() + st.gpu_score(v, np.array([g_u])).sum()
                        )
                        gain = p.penalty[t] - float(st.gpu_score(t, spot_t).sum()) - (swap_cost - before)
                        if gain > 0:
                            st.place(t, spot_t)
                            placed_count += 1
                            done = True
                            break
                    st.remove(u)
                    st.remove(v)
                    st.place(u, np.array([g_u]))
                    st.place(v, np.array([gv]))
                if done:
                    break
            if done:
                break
    return placed_count + st.direct


def trade_improve(st: FleetState, deadline: float, max_nodes: int = 8) -> int:
    """Place left-out single-GPU tasks by trading the whole contents of two GPUs of one class on two
    nodes, so that CPU and host memory move to where they are free.

    A node packed with small tasks runs out of CPU or host memory while its GPUs keep slivers of
    share and memory; a node of whole-GPU jobs has CPU and memory to spare and no GPU room. For a
    left-out task t and a node A where a GPU g has room for it but CPU or host memory is short,
    take another GPU g' of A and a GPU h of the same class on another node B, every task on both
    alone on one GPU and free to move (no spread group, dataset or current placement), such that after
    trading their contents A has the CPU and memory for t and B still fits; trade them and place t
    on g. Each GPU keeps its load and memory (the same class, the same tasks' demands), so only
    node limits are checked. Kept when the objective drops. Returns the number of tasks placed.
    """
    p = st.p
    free_task = (p.gang == 1) & (p.spread < 0) & (p.dataset < 0) & (p.current[:, 0] < 0)
    st.direct = placed_count = 0
    seen = -1  # len(st.changed) when the per-GPU sums below were taken: they hold until a task moves
    for t in _left_out(st, p.gang == 1, deadline):
        room = st._fits(t, slice(None)) & st.is_gpu
        if not room.any():
            continue
        nodes = np.unique(p.gpu_node[room])
        d_cpu = st.cpu[nodes] + p.cpu[t] - p.node_cpu[nodes]
        d_ram = st.ram[nodes] + p.ram[t] - p.node_ram[nodes]
        short = (d_cpu > _EPS) | (d_ram > _EPS)
        if (~short).any():
            continue  # it fits a node as is but for spread room: nothing to trade for
        rel = np.maximum(d_cpu / max(p.cpu[t], 1e-9), d_ram / max(p.ram[t], 1e-9))
        nodes = nodes[np.argsort(rel, kind="stable")][:max_nodes]
        if seen != len(st.changed):
            # per GPU: the CPU and memory of its tasks, and whether they may all move
            seen = len(st.changed)
            on = np.flatnonzero(st.assign[:, 0] >= 0)
            g_of = st.assign[on, 0]
            cpu_g = np.bincount(g_of, weights=p.cpu[on], minlength=p.n_gpus)
            ram_g = np.bincount(g_of, weights=p.ram[on], minlength=p.n_gpus)
            held = st.assign[on][~free_task[on]]
            stuck = np.zeros(p.n_gpus, dtype=bool)
            stuck[held[held >= 0]] = True
            movable = st.is_gpu & ~stuck
            of_class: dict[int, np.ndarray] = {}  # the movable GPUs of a class
        weigh = cpu_g / max(p.cpu[t], 1e-9) + ram_g / max(p.ram[t], 1e-9)  # what a GPU's tasks hold
        done = False
        for a in nodes:
            a = int(a)
            gs = np.flatnonzero(room & (p.gpu_node == a))
            need_cpu = st.cpu[a] + p.cpu[t] - p.node_cpu[a]
            need_ram = st.ram[a] + p.ram[t] - p.node_ram[a]
            mine = np.flatnonzero((p.gpu_node == a) & movable & (st.count > 0))
            for g2 in mine[np.argsort(-weigh[mine], kind="stable")].tolist():
                if gs.size == 1 and gs[0] == g2:
                    continue
                c = int(p.gpu_class[g2])
                if c not in of_class:
                    of_class[c] = np.flatnonzero(movable & (p.gpu_class == c))
                hs = of_class[c]
                b = p.gpu_node[hs]
                ok = b != a
                ok &= cpu_g[g2] - cpu_g[hs] >= need_cpu - _EPS
                ok &= ram_g[g2] - ram_g[hs] >= need_ram - _EPS
                ok &= st.cpu[b] - cpu_g[hs] + cpu_g[g2] <= p.node_cpu[b] * (1 + _EPS) + _EPS
                ok &= st.ram[b] - ram_g[hs] + ram_g[g2] <= p.node_ram[b] * (1 + _EPS) + _EPS
                hs = hs[ok]
                if hs.size == 0:
                    continue
                h = int(hs[np.argmin(weigh[hs])])
                if _trade(st, t, g2, h, gs[gs != g2]):
                    placed_count += 1
                    done = True
                    break
            if done:
                break
    return placed_count + st.direct


def _trade(st: FleetState, t: int, g2: int, h: int, spots: np.ndarray) -> bool:
    """Trade the contents of GPUs g2 and h, then place task t on one of `spots` (GPUs of g2's node);
    kept when the objective drops, else undone. True when kept."""
    p = st.p
    before = p.objective(st.assign)
    on_g2 = np.flatnonzero(st.assign[:, 0] == g2)
    on_h = np.flatnonzero(st.assign[:, 0] == h)
    for u in (*on_g2, *on_h):
        st.remove(int(u))
    moved = [(int(u), h) for u in on_g2] + [(int(u), g2) for u in on_h]
    ok = True
    for u, g in moved:
        if not st.fits_on(u, np.array([g])):
            ok = False
            break
        st.place(u, np.array([g]))
    spot = next((int(g) for g in spots if ok and st.fits_on(t, np.array([g]))), None)
    if ok and spot is not None:
        st.place(t, np.array([spot]))
        if p.objective(st.assign) < before - 1e-9 * max(1.0, abs(before)):
            return True
        st.remove(t)
    for u, _ in moved:
        st.remove(u)
    for u in on_g2:
        st.place(int(u), np.array([g2]))
    for u in on_h:
        st.place(int(u), np.array([h]))
    return False


def state_of(p: FleetProgram, assign: np.ndarray) -> FleetState:
    """The running loads of a complete assignment [T, K]."""
    st = FleetState(p)
    for t in np.flatnonzero(assign[:, 0] >= 0):
        row = assign[t]
        st.place(int(t), row[row >= 0])
    return st


def honour_priorities(p: FleetProgram, assign: np.ndarray) -> tuple[np.ndarray, int]:
    """Place left-out optional tasks (highest priority first) that fit as things stand, or on a node
    once its lower-priority optional tasks are taken off (these then go wherever they still fit).
    Each change places a task of a strictly higher tier than any it removes, so the priority order
    only improves; the verifier's dominance rule holds after a full pass (one look per kind of task
    that found no room keeps it short). Returns the assignment and how many tasks it placed."""
    fixed, placed, _ = honour_priorities_until(p, assign, None)
    return fixed, placed


def honour_priorities_until(
    p: FleetProgram, assign: np.ndarray, deadline: float | None
) -> tuple[np.ndarray, int, bool]:
    """`honour_priorities`, stopped at `deadline` (time.monotonic(); None: never). Every change keeps
    the plan feasible, so a pass cut short still leaves a valid plan, but not one the dominance rule
    can vouch for. Returns the assignment, how many tasks it placed and whether the pass finished."""
    st = state_of(p, assign)
    todo = np.flatnonzero((assign[:, 0] < 0) & p.optional & p.has_home())
    placed = 0
    stuck: set[tuple[object, ...]] = set()  # kinds of task that found no room: the state only fills up
    for t in todo[np.lexsort((-p.penalty[todo], -p.priority[todo]))]:
        if deadline is not None and time.monotonic() >= deadline:  # the clock only: a stop lets it finish
            return st.assign, placed, False
        kind = fit_kind(p, int(t))
        if kind in stuck:
            continue
        spot = st.best_spot(int(t))
        if spot is not None and not _worth_placing(st, int(t), spot):
            continue  # free room, but placing costs more than leaving out (a 'placed' trade-off)
        if spot is None:
            spot = _promote(st, int(t))
        if spot is None:
            stuck.add(kind)
            continue
        st.place(int(t), spot)
        placed += 1
    return st.assign, placed, True


def fit_kind(p: FleetProgram, t: int) -> tuple[object, ...]:
    """What decides where task t fits, and what it may take from (its priority): two tasks of one
    kind fit in the same places."""
    return (
        int(p.gang[t]),
        float(p.share[t]),
        float(p.gpu_mem[t]),
        float(p.cpu[t]),
        float(p.ram[t]),
        int(p.priority[t]),
        int(p.spread[t]),
        bool(p.same_type[t]),
        p.load_c[t].tobytes(),
        p.eligible_c[t].tobytes(),
    )


def _worth_placing(st: FleetState, t: int, spot: np.ndarray) -> bool:
    """The greedy's rule: an optional task goes in only when that lowers the objective."""
    p = st.p
    added = float(st.gpu_score(t, spot).sum() + st.node_extra(t, p.gpu_node[spot[:1]])[0])
    return added + p.transfer_each[t] < p.penalty[t]


#: Most nodes `_promote` weighs for one task (of those where it fits once lower tiers leave).
PROMOTE_NODES = 8


def _promote(st: FleetState, t: int) -> np.ndarray | None:
    """Make room for `t` on a node by taking off optional tasks of lower priority, and re-place those
    where they still fit (else they stay out). Of the first `PROMOTE_NODES` nodes where `t` fits with
    all of them gone, the one whose room costs least is taken: tasks leave lowest tier first (then
    largest) until `t` fits, those `t` does not need come back, and nodes compare by what is left out,
    tier by tier from the highest, then by drop penalty. The GPUs for `t`, or None (nothing changed)."""
    p = st.p
    placed = np.flatnonzero(st.assign[:, 0] >= 0)
    lower = placed[p.optional[placed] & (p.priority[placed] < p.priority[t])]
    if not lower.size:
        return None
    nodes = p.gpu_node[st.assign[lower, 0]]
    levels = np.unique(p.priority[lower])[::-1]
    best: tuple[tuple[float, ...], int, np.ndarray] | None = None
    tried = 0
    for n in _room_without(st, t, lower).tolist():
        victims = lower[nodes == n]
        out = _room_on(st, t, int(n), victims)
        if out is None:
            continue
        key = (*(float((p.priority[out] == v).sum()) for v in levels), float(p.penalty[out].sum()))
        if best is None or key < best[0]:
            best = (key, int(n), out)
        tried += 1
        if tried >= PROMOTE_NODES or not out.size:  # nothing left out: no node does better
            break
    if best is None:
        return None
    _, n, out = best
    for u in out:
        st.remove(int(u))
    spot = _spot_on(st, t, n)
    assert spot is not None, "room found for a promoted task is gone"
    st.place(t, spot)
    for u in out[np.argsort(-p.priority[out], kind="stable")]:
        again = st.best_spot(int(u))
        if again is not None:
            st.place(int(u), again)
    st.remove(t)  # the caller places it
    return spot


def _room_on(st: FleetState, t: int, node: int, victims: np.ndarray) -> np.ndarray | None:
    """The tasks of `victims` (placed on `node`, lower priority than t) that must leave for t to fit
    there, or None when t does not fit even with all of them gone; the state is left as it was.
    Greedy: take them off lowest priority first, largest GPU footprint first within a priority,
    until t fits; then put back, highest priority first, each that still fits beside t."""
    p = st.p
    rows = {int(u): st.assign[u][st.assign[u] >= 0].copy() for u in victims}
    for u in victims:
        st.remove(int(u))
    spot = _spot_on(st, t, node)
    for u in victims:
        st.place(int(u), rows[int(u)])
    if spot is None:
        return None
    order = victims[np.lexsort((-(p.gang[victims] * p.share[victims]), p.priority[victims]))]
    gone: list[int] = []
    for u in order:
        st.remove(int(u))
        gone.append(int(u))
        spot = _spot_on(st, t, node)
        if spot is not None:
            break
    assert spot is not None
    st.place(t, spot)
    out = []
    for u in sorted(gone, key=lambda u: (-p.priority[u], p.gang[u] * p.share[u])):
        if st.fits_on(u, rows[u]):
            st.place(u, rows[u])
        else:
            out.append(u)
    st.remove(t)
    for u in out:
        st.place(u, rows[u])
    return np.array(out, dtype=np.int64)


def _room_without(st: FleetState, t: int, lower: np.ndarray) -> np.ndarray:
    """The nodes (ascending) holding some of the placed tasks `lower` where task t may fit once those
    leave: CPU, host memory and k GPUs with room for it, checked on all nodes at once with a little
    slack. A necessary condition only (spread groups are not looked at), so `_promote` tries no node
    in vain that it would otherwise find, and skips the nodes where t cannot fit at all."""
    p = st.p
    rows = st.assign[lower]
    used = rows >= 0
    g = rows[used]
    owner = np.repeat(lower, used.sum(axis=1))
    load, mem, count = st.load.copy(), st.mem.copy(), st.count.copy()
    np.subtract.at(load, g, p.load_c[owner, p.gpu_class[g]])
    np.subtract.at(mem, g, p.gpu_mem[owner])
    np.subtract.at(count, g, 1)
    at = p.gpu_node[rows[:, 0]]
    cpu, ram = st.cpu.copy(), st.ram.copy()
    np.subtract.at(cpu, at, p.cpu[lower])
    np.subtract.at(ram, at, p.ram[lower])
    slack = 1e-6
    node_ok = (cpu + p.cpu[t] <= p.node_cpu * (1 + slack) + slack) & (
        ram + p.ram[t] <= p.node_ram * (1 + slack) + slack
    )
    fit = p.eligible(t) & node_ok[p.gpu_node]
    k = int(p.gang[t])
    if not p.horizon and (k > 1 or p.share[t] >= 1.0):
        fit &= count == 0
    fit &= load + p.load_c[t, p.gpu_class] <= p.capacity * (1 + slack) + slack
    if not p.horizon:
        fit &= mem + p.gpu_mem[t] <= p.mem_cap * (1 + slack) + slack
    n_types = max(len(p.type_names), 1)
    key = p.gpu_node * n_types + np.maximum(p.gpu_type, 0) if p.same_type[t] else p.gpu_node
    counts = np.bincount(key[fit], minlength=1)
    room = np.unique(np.flatnonzero(counts >= k) // (n_types if p.same_type[t] else 1))
    return np.intersect1d(room, at)

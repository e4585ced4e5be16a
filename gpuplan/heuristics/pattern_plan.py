"""A plan from the node-pattern LP (`gpuplan.bounds.node_patterns`): its columns, rounded to whole
nodes, say which tasks each node takes; a greedy pass places them there, then fills what is left.

When the batch asks for more than the fleet holds, which tasks to place and on which nodes (small
tasks on the large-memory GPUs, whole-GPU tasks on the small ones, CPU and host memory spent in
step with the GPUs) is what a plain size order gets wrong, and what the LP's patterns answer. Phase
1 places each chosen task, in the greedy's order (gangs first, then the largest), on its node only;
phase 2 offers every task still out (those the rounding left out, and chosen ones that found no
room there) anywhere, smallest first, so the room left holds as many tasks as possible.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from gpuplan.bounds.node_patterns import NodePatterns
from gpuplan.heuristics.fleet_greedy import FleetState, task_order
from gpuplan.interrupt import past
from gpuplan.program.fleet import FleetProgram


class _Guided(FleetState):
    """A FleetState whose candidate nodes can be narrowed to one node for the task at hand."""

    only: int = -1  # the one node allowed, or -1 for every node

    def node_ok(self, t: int) -> np.ndarray:
        ok = super().node_ok(t)
        if self.only < 0:
            return ok
        one = np.zeros_like(ok)
        one[self.only] = ok[self.only]
        return one


def _size(p: FleetProgram) -> np.ndarray:
    """float [T]: the largest fraction of the fleet's GPUs, CPU or host memory a task takes."""
    gpus = max(int((p.gpu_ok & ~p.host).sum()), 1)
    rel = [p.gang * p.share / gpus]
    for cap, need in ((p.node_cpu, p.cpu), (p.node_ram, p.ram)):
        finite = cap[np.isfinite(cap)]
        if finite.size and finite.sum() > 0:
            rel.append(need / finite.sum())
    return np.maximum.reduce(rel)


def round_columns(pat: NodePatterns, deadline: float | None = None) -> list[tuple[int, np.ndarray, int]]:
    """Whole numbers of nodes per column, (b, x, nodes), by diving on the master LP over the columns
    found: solve it for the nodes and tasks still free, fix floor(lambda) of every column (the
    largest lambda once when all are below 1), repeat until no node or no value is left. Fixing
    floor(lambda) keeps every shape within its count; the one column rounded up may ask for more
    tasks than are left (the plan then takes what there is). Stops at `deadline`."""
    from ortools.linear_solver import pywraplp

    if not pat.columns:
        return []
    b_n = int(pat.node_class.max()) + 1
    nodes_left = np.bincount(pat.node_class[pat.node_class >= 0], minlength=b_n).astype(np.float64)
    tasks_left = pat.shape_count.astype(np.float64)
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:
        return []
    inf = solver.infinity()
    top = float(pat.shape_value.max())
    rows = [solver.Constraint(-inf, float(n)) for n in tasks_left]
    node_rows = [solver.Constraint(-inf, float(m)) for m in nodes_left]
    obj = solver.Objective()
    obj.SetMaximization()
    lam = []
    for b, x, _ in pat.columns:
        var = solver.NumVar(0, inf, "")
        for i in np.flatnonzero(x):
            rows[i].SetCoefficient(var, float(x[i]))
        node_rows[b].SetCoefficient(var, 1.0)
        obj.SetCoefficient(var, float(pat.shape_value @ x) / top)
        lam.append(var)
    fixed = np.zeros(len(lam), dtype=np.int64)
    while nodes_left.sum() > 0 and not (deadline is not None and past(deadline)):
        for i, r in enumerate(rows):
            r.SetUb(float(max(0.0, tasks_left[i])))
        for b, r in enumerate(node_rows):
            r.SetUb(float(nodes_left[b]))
        if solver.Solve() != pywraplp.Solver.OPTIMAL or obj.Value() <= 1e-9:
            break
        value = np.array([v.solution_value() for v in lam])
        take = np.floor(value + 1e-9).astype(np.int64)
        if not take.any():
            take[int(np.argmax(value))] = 1
        for j in np.flatnonzero(take):
            b, x, _ = pat.columns[j]
            n = int(min(take[j], nodes_left[b]))
            fixed[j] += n
            nodes_left[b] -= n
            tasks_left -= n * x
    return [(pat.columns[j][0], pat.columns[j][1], int(fixed[j])) for j in np.flatnonzero(fixed)]


def pattern_targets(p: FleetProgram, pat: NodePatterns, deadline: float | None = None) -> np.ndarray:
    """int [T]: the node each task goes to when the node-pattern LP's columns are rounded to whole
    nodes (`round_columns`), -1 for none; a node's pattern is filled with tasks of each shape in
    the greedy's order while there are any."""
    target = np.full(p.n_tasks, -1, dtype=np.int64)
    order = task_order(p, "dominant")
    shape = pat.shape_of_task[order]
    pools = {int(i): deque(order[shape == i]) for i in np.unique(shape[shape >= 0])}
    free = {
        int(b): deque(np.flatnonzero(pat.node_class == b))
        for b in np.unique(pat.node_class[pat.node_class >= 0])
    }
    for b, x, count in round_columns(pat, deadline):
        for _ in range(count):
            if not free[b]:
                break
            n = free[b].popleft()
            for i in np.flatnonzero(x):
                pool = pools.get(int(i), deque())
                for _ in range(int(x[i])):
                    if pool:
                        target[pool.popleft()] = n
    return target


def guided_greedy(p: FleetProgram, target: np.ndarray, deadline: float | None = None) -> FleetState:
    """One guided pass (module docstring): each task t with `target[t]` >= 0 first, on that node
    only; then every task still out, anywhere. Optional tasks go in only when that lowers the
    objective, as in the plain greedy; running tasks are kept where they are first when they still
    fit. Stops placing at `deadline`."""
    st = _Guided(p)
    first = task_order(p, "dominant")
    for t in first:
        cur = p.current[t]
        cur = cur[cur >= 0]
        if cur.size and cur.size == p.gang[t]:
            ok = st.gpu_ok(t, st.node_ok(t))
            one_node = np.unique(p.gpu_node[cur]).size == 1
            one_type = not p.same_type[t] or np.unique(p.gpu_type[cur]).size == 1
            if np.all(ok[cur]) and one_node and one_type:
                st.place(t, cur)
    chosen = first[target[first] >= 0]
    rest = np.lexsort((_size(p), p.gang, -p.priority))
    for phase, tasks in ((1, chosen), (2, rest)):
        for i, t in enumerate(tasks):
            if deadline is not None and i % 64 == 0 and time.monotonic() >= deadline:
                st.only = -1
                return st
            if st.assign[t, 0] >= 0:
                continue
            st.only = int(target[t]) if phase == 1 else -1
            spot = st.best_spot(int(t))
            if spot is None:
                continue
            if p.optional[t]:
                added = float(st.gpu_score(t, spot).sum() + st.node_extra(t, p.gpu_node[spot[:1]])[0])
                if added + p.transfer_each[t] >= p.penalty[t] + p.move_cost[t] * p.gang[t] * (
                    p.current[t, 0] >= 0
                ):
                    continue
            st.place(int(t), spot)
    st.only = -1
    return st


__all__ = ["guided_greedy", "pattern_targets", "round_columns"]

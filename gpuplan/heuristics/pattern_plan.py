"""A plan from the node-pattern LP (`gpuplan.bounds.node_patterns`): its columns, rounded to whole
nodes, say what each node holds and how its GPUs are set up; tasks are laid into those slots, then
a greedy pass fills what is left.

When the batch asks for more than the fleet holds, which tasks to place and on which nodes (small
tasks on the large-memory GPUs, whole-GPU tasks on the small ones, CPU and host memory spent in
step with the GPUs) is what a plain size order gets wrong, and what the LP's patterns answer. A
pattern fixes per node the tasks of each shape and the configuration of each GPU (which per-GPU
demands share it), so a node's tasks go straight into the slots of their kind (gangs first, on
distinct GPUs), each checked against the state (CPU and host memory were rounded down in the
pricing). Then every task still out (those the rounding left out, and any that found no slot) is
offered anywhere, smallest first, by the greedy's best spot, so the room left holds as many tasks as
possible (once a task finds no room, the others of its shape are not tried: tasks of one shape fit
in the same places, and the state only fills up).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from gpuplan.bounds.node_patterns import NodePatterns
from gpuplan.heuristics.fleet_greedy import FleetState, state_of, task_order
from gpuplan.interrupt import past
from gpuplan.program.fleet import FleetProgram


def _worth(st: FleetState, t: int, gpus: np.ndarray) -> bool:
    """The greedy's rule: an optional task goes in only when that lowers the objective."""
    p = st.p
    if not p.optional[t]:
        return True
    added = float(st.gpu_score(t, gpus).sum() + st.node_extra(t, p.gpu_node[gpus[:1]])[0])
    keep = p.move_cost[t] * p.gang[t] * (p.current[t, 0] >= 0)
    return added + p.transfer_each[t] < p.penalty[t] + keep


def pattern_plan(
    p: FleetProgram, pat: NodePatterns, deadline: float | None = None, dive_until: float | None = None
) -> FleetState:
    """The plan of the module docstring; running tasks are kept where they are first when they
    still fit. The rounding (`NodePatterns.dive`) stops at `dive_until` (else `deadline`), the
    passes at `deadline`."""
    return lay_patterns(p, pat, pat.dive(deadline if dive_until is None else dive_until), deadline)


def lay_patterns(
    p: FleetProgram,
    pat: NodePatterns,
    patterns: Sequence[tuple[int, np.ndarray, np.ndarray, int]],
    deadline: float | None = None,
) -> FleetState:
    """Lay tasks into whole-node `patterns` (node class b, shape counts x [I], GPU configurations
    u [J of b], nodes), each on the next free node of its class, then offer what is left anywhere
    (module docstring); running tasks are kept where they are first when they still fit."""
    st = FleetState(p)
    order = task_order(p, "dominant")
    for t in order:
        cur = p.current[t]
        cur = cur[cur >= 0]
        one_node = cur.size and cur.size == p.gang[t] and np.unique(p.gpu_node[cur]).size == 1
        if one_node and st.fits_on(int(t), cur):
            st.place(int(t), cur)
    shape = pat.shape_of_task[order]
    pools = {int(i): deque(order[shape == i]) for i in np.unique(shape[shape >= 0])}
    usable = np.flatnonzero(p.gpu_ok & ~p.host)
    by_node = usable[np.argsort(p.gpu_node[usable], kind="stable")]
    starts = np.searchsorted(p.gpu_node[by_node], np.arange(p.n_nodes + 1))
    classes = np.unique(pat.node_class[pat.node_class >= 0])
    free = {int(b): deque(np.flatnonzero(pat.node_class == b)) for b in classes}
    for b, x, u, count in patterns:
        pricing = pat.master.prices[b]
        items = np.flatnonzero(x)
        items = items[np.argsort(-pat.master.sh.gang[items], kind="stable")]  # gangs first
        for _ in range(count):
            if not free[b] or (deadline is not None and past(deadline)):
                break
            n = int(free[b].popleft())
            gpus = by_node[starts[n] : starts[n + 1]]
            slots: dict[int, list[int]] = {}
            at = 0
            for j in np.flatnonzero(u):
                for g in gpus[at : at + int(u[j])]:
                    for k in np.flatnonzero(pricing.configs[j]):
                        slots.setdefault(int(k), []).extend([int(g)] * int(pricing.configs[j, k]))
                at += int(u[j])
            for i in items:
                kind = int(pricing.kind[np.searchsorted(pricing.items, i)])
                pool = pools.get(int(i), deque())
                for _ in range(int(x[i])):
                    while pool and st.assign[pool[0], 0] >= 0:
                        pool.popleft()
                    if not pool:
                        break
                    t = int(pool[0])
                    here = slots.get(kind, [])
                    chosen = list(dict.fromkeys(here))[: int(p.gang[t])]
                    if len(chosen) < p.gang[t]:
                        break
                    spot = np.array(chosen, dtype=np.int64)
                    if not (st.fits_on(t, spot) and _worth(st, t, spot)):
                        break
                    pool.popleft()
                    st.place(t, spot)
                    for g in chosen:
                        here.remove(g)
    _fill(st, pat, np.ones(p.n_tasks, dtype=bool), deadline)
    return st


def _fill(st: FleetState, pat: NodePatterns, tasks: np.ndarray, deadline: float | None) -> None:
    """Offer every task of `tasks` (bool [T]) still out anywhere, highest priority, then smallest
    first, by the greedy's best spot."""
    p = st.p
    rest = np.lexsort((p.dominant_size(), p.gang, -p.priority))
    rest = rest[tasks[rest]]
    stuck: set[tuple[int, int, bool]] = set()  # kinds of task that found no room: the state only fills up
    for i, t in enumerate(rest):
        if deadline is not None and i % 64 == 0 and time.monotonic() >= deadline:
            break
        kind = (int(pat.shape_of_task[t]), int(p.spread[t]), bool(p.same_type[t]))
        if st.assign[t, 0] >= 0 or kind in stuck:
            continue
        spot = st.best_spot(int(t))
        if spot is None:
            stuck.add(kind)
        elif _worth(st, int(t), spot):
            st.place(int(t), spot)


def lay_over(
    p: FleetProgram,
    pat: NodePatterns,
    base: np.ndarray | None,
    plan: np.ndarray,
    tasks: np.ndarray,
    deadline: float | None = None,
) -> np.ndarray:
    """`base` (None: nothing placed) with the tasks of `tasks` (bool [T]): a start for one stage of a
    tier-by-tier solve that follows the node-pattern plan where the stages before it left room.
    Each task `plan` places goes on the GPUs it gives when they still hold it, largest gang first,
    and the others go where they fit; two orders, the one that places more penalty kept: every
    such task first, then the others (the plan's layout whole), or gang size by gang size (a whole
    node for a left-out gang of 8 is still free before the smaller tasks are laid)."""
    best: np.ndarray | None = None
    kept = -1.0
    for by_gang in (False, True):
        st = FleetState(p) if base is None else state_of(p, base)
        groups = [tasks & (p.gang == g) for g in np.unique(p.gang[tasks])[::-1]] if by_gang else [tasks]
        for mine in groups:
            todo = np.flatnonzero(mine & (plan[:, 0] >= 0) & (st.assign[:, 0] < 0))
            for t in todo[np.argsort(-p.gang[todo], kind="stable")]:
                gpus = plan[t][plan[t] >= 0]
                if st.fits_on(int(t), gpus):
                    st.place(int(t), gpus)
            _fill(st, pat, mine, deadline)
        value = float(p.penalty[tasks & (st.assign[:, 0] >= 0)].sum())
        if value > kept:
            best, kept = st.assign, value
    assert best is not None
    return best


__all__ = ["lay_over", "lay_patterns", "pattern_plan"]

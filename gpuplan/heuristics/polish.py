"""Post-processing shared by every backend: place dropped tasks that fit, priority first.

A dropped optional task is placed where it fits; failing that, on a GPU where evicting
lower-priority optional tasks makes room (the evicted tasks are then placed elsewhere if they can). The
result satisfies the priority rule that `verify` checks: no dropped task could take the place of
lower-priority work. An optimal solution is left unchanged.
"""

from __future__ import annotations

import heapq

import numpy as np

from gpuplan.program.gap import DROPPED, Program


def polish(program: Program, assign: np.ndarray) -> np.ndarray:
    """Return a copy of `assign` with the priority rule restored and free room used."""
    assign = assign.copy()
    resid = program.capacity_int - program.used_int(assign)
    big = np.iinfo(np.int64).max
    queue = [
        (-int(program.priority[t]), int(t)) for t in np.flatnonzero((assign == DROPPED) & program.optional)
    ]
    heapq.heapify(queue)
    while queue:
        _, d = heapq.heappop(queue)
        if assign[d] != DROPPED:
            continue
        loads = program.load_int[:, d, :]
        fits = program.eligible[d] & np.all(loads <= resid, axis=0)
        if fits.any():
            g = int(np.argmin(np.where(fits, program.cost_int[d], big)))
            assign[d] = g
            resid[:, g] -= loads[:, g]
            continue
        p = program.priority[d]
        for g in np.flatnonzero(program.eligible[d])[
            np.argsort(program.cost_int[d, program.eligible[d]], kind="stable")
        ]:
            on_g = np.flatnonzero(assign == g)
            victims = on_g[(program.priority[on_g] < p) & program.optional[on_g]]
            if victims.size == 0:
                continue
            victims = victims[
                np.lexsort((-program.load_int[:, victims, g].max(axis=0), program.priority[victims]))
            ]
            free = resid[:, g].copy()
            chosen: list[int] = []
            for u in victims:
                if np.all(loads[:, g] <= free):
                    break
                free += program.load_int[:, u, g]
                chosen.append(int(u))
            if not np.all(loads[:, g] <= free):
                continue
            for u in chosen:
                assign[u] = DROPPED
                heapq.heappush(queue, (-int(program.priority[u]), u))
            assign[d] = g
            resid[:, g] = free - loads[:, g]
            break
    return assign

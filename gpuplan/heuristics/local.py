"""Local search: repair an infeasible start and descend with shift and swap moves.

Capacity violations are allowed during the search and priced by an adaptive weight (raised while
the assignment stays infeasible), after the penalized neighbourhood searches of Yagiura, Ibaraki
and Glover for the generalized assignment problem. Every move is evaluated over all GPUs (shift)
or all partner tasks (swap) at once with numpy.
"""

from __future__ import annotations

import numpy as np

from gpuplan.interrupt import past
from gpuplan.program.gap import DROPPED, Program


class LocalSearch:
    """Penalized shift/swap descent on a Program, in integer units."""

    def __init__(self, program: Program, seed: int = 0) -> None:
        self.p = program
        self.rng = np.random.default_rng(seed)
        cap = program.capacity_int.astype(np.float64)
        # Overload in resource r is priced per unit of (mean) capacity, so resources compare.
        self.norm = 1.0 / np.maximum(cap.mean(axis=1), 1.0)  # [R]
        elig_cost = program.cost_int[program.eligible].astype(np.float64)
        spread = float(np.percentile(elig_cost, 90) - np.percentile(elig_cost, 10)) if elig_cost.size else 1.0
        self.weight = max(spread, 1.0) * 2.0
        self.cost = np.where(program.eligible, program.cost_int, np.iinfo(np.int64).max // 4).astype(
            np.float64
        )
        self.load = program.load_int.astype(np.float64)  # [R, T, G]
        self.cap = cap

    # -- helpers ----------------------------------------------------------------------------
    def used(self, assign: np.ndarray) -> np.ndarray:
        return self.p.used_int(assign).astype(np.float64)

    def overload(self, used: np.ndarray) -> float:
        return float((np.maximum(used - self.cap, 0.0) * self.norm[:, None]).sum())

    def _over(self, used_cols: np.ndarray, cap_cols: np.ndarray) -> np.ndarray:
        """Weighted overload per column for used/cap arrays of shape [R, k]."""
        return (np.maximum(used_cols - cap_cols, 0.0) * self.norm[:, None]).sum(axis=0)

    # -- construction -------------------------------------------------------------------------
    def insert_unplaced(self, assign: np.ndarray) -> np.ndarray:
        """Place every unplaced required task at its cheapest penalized position."""
        assign = assign.copy()
        used = self.used(assign)
        todo = np.flatnonzero((assign == DROPPED) & ~self.p.optional)
        for t in todo[np.argsort(-self.load[:, todo, :].max(axis=(0, 2)), kind="stable")]:
            elig = self.p.eligible[t]
            if not elig.any():
                continue
            delta = self._over(used + self.load[:, t, :], self.cap) - self._over(used, self.cap)
            score = np.where(elig, self.cost[t] + self.weight * delta, np.inf)
            g = int(np.argmin(score))
            assign[t] = g
            used[:, g] += self.load[:, t, g]
        return assign

    # -- moves ------------------------------------------------------------------------------
    def _shift_pass(self, assign: np.ndarray, used: np.ndarray, deadline: float) -> int:
        moved = 0
        w = self.weight
        for t in self.rng.permutation(self.p.n_tasks):
            a = assign[t]
            if a == DROPPED:
                continue
            lt = self.load[:, t, :]
            # change in overload at the source when t leaves
            src_before = self._over(used[:, [a]], self.cap[:, [a]])[0]
            src_after = self._over(used[:, [a]] - lt[:, [a]], self.cap[:, [a]])[0]
            gain = self.cost[t, a] + w * (src_before - src_after)
            add = self.cost[t] + w * (self._over(used + lt, self.cap) - self._over(used, self.cap))
            add[a] = np.inf
            g = int(np.argmin(add))
            if add[g] < gain - 1e-9:
                used[:, a] -= lt[:, a]
                used[:, g] += lt[:, g]
                assign[t] = g
                moved += 1
            if moved % 64 == 0 and past(deadline):
                break
        return moved

    def _swap_pass(self, assign: np.ndarray, used: np.ndarray, deadline: float, budget: int) -> int:
        """Swap t1 (on a1) with t2 (on a2), scanning all partners t2 for each t1."""
        p = self.p
        placed = np.flatnonzero(assign != DROPPED)
        if placed.size < 2:
            return 0
        w = self.weight
        moved = 0
        for n_done, t1 in enumerate(self.rng.permutation(placed)[:budget]):
            if n_done % 32 == 0 and past(deadline):
                break
            a1 = assign[t1]
            a_all = assign[placed]
            mask = (a_all != a1) & p.eligible[t1, a_all] & p.eligible[placed, a1]
            if not mask.any():
                continue
            t2 = placed[mask]
            a2 = a_all[mask]
            dcost = self.cost[t1, a2] + self.cost[t2, a1] - self.cost[t1, a1] - self.cost[t2, a2]
            l1a1 = self.load[:, t1, a1][:, None]
            l2a1 = self.load[:, t2, a1]
            l1a2 = self.load[:, t1, a2]
            l2a2 = self.load[:, t2, a2]
            u1 = used[:, [a1]]
            u2 = used[:, a2]
            c1 = self.cap[:, [a1]]
            c2 = self.cap[:, a2]
            before = self._over(u1, c1) + self._over(u2, c2)
            after = self._over(u1 - l1a1 + l2a1, c1) + self._over(u2 - l2a2 + l1a2, c2)
            delta = dcost + w * (after - before)
            k = int(np.argmin(delta))
            if delta[k] < -1e-9:
                u, g2 = int(t2[k]), int(a2[k])
                used[:, a1] += self.load[:, u, a1] - self.load[:, t1, a1]
                used[:, g2] += self.load[:, t1, g2] - self.load[:, u, g2]
                assign[t1], assign[u] = g2, a1
                moved += 1
        return moved

    # -- driver -----------------------------------------------------------------------------
    def run(self, assign: np.ndarray, deadline: float, swap_budget: int | None = None) -> np.ndarray:
        """Descend from `assign` until a local optimum (feasible if the search gets there)."""
        assign = self.insert_unplaced(assign)
        used = self.used(assign)
        budget = self.p.n_tasks if swap_budget is None else swap_budget
        best = assign.copy() if self.overload(used) == 0 else None
        best_cost = self.p.objective_int(best) if best is not None else None
        rounds = 0
        while not past(deadline) and rounds < 200:
            rounds += 1
            moved = self._shift_pass(assign, used, deadline)
            if moved == 0:
                moved = self._swap_pass(assign, used, deadline, budget)
            feasible = self.overload(used) == 0
            if feasible:
                cost = self.p.objective_int(assign)
                if best_cost is None or cost < best_cost:
                    best, best_cost = assign.copy(), cost
            if moved == 0 and feasible:
                break
            if not feasible:  # price overload higher each round until the search is feasible
                self.weight *= 2.0 if moved == 0 else 1.3
        return best if best is not None else assign

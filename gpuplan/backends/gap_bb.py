r"""Branch and bound on the knapsack Lagrangian bound, and a large-neighbourhood search around it.

With the multipliers :math:`u` of `gpuplan.bounds.knapsack` and reduced costs :math:`w_{tg} = c_{tg} - u_t`,
every plan that places each task once costs

.. math::

    \sum_t u_t + \sum_g S_g, \qquad S_g = \sum_{t \to g} w_{tg} \;\ge\; z_g ,

where :math:`z_g` is the optimum of GPU g's 0-1 knapsack over the tasks still free for it. The
depth-first search in `_gapbb.c` assigns one task at a time (the task with the fewest GPUs left,
GPUs in order of their bound), keeps every :math:`z_g` exact for the current node by dynamic
programming, and prunes a node, or one task-GPU choice, whose bound exceeds the target. Given a
target T it either finds a plan of cost at most T (and then keeps tightening T to the plan's cost
minus one) or, when it runs to the end, proves that none exists: cost >= T + 1 (integer costs).

Two uses, in `search`:

1. **Ladder.** T = ceil(L(u)), then T + 1, ...: each exhausted level T proves cost >= T + 1, and
   a plan found one step above an exhausted level is optimal (its cost is at most T and at least T).
   Steps double while levels come out empty quickly (then a plan is optimal only if its level runs
   to the end). This closes the small tight programs (OR-Library gapc and
   gapd 5x100, 5x200) in a second or two, where CP-SAT and SCIP both run out of time.
2. **Large-neighbourhood search.** The incumbent's tasks on a few GPUs are freed (GPUs drawn with
   probability growing with their Lagrangian waste :math:`S_g - z_g`, the part of the cost gap they
   hold), every other task stays put, and the search looks for any plan of cost below the
   incumbent's under a node limit. The first rounds free every GPU; a neighbourhood searched to its
   end without a plan widens the next one, a round cut by the node limit narrows it. After a run of
   rounds without improvement a worker accepts a plan of equal cost (a plateau move). Each worker
   follows its own trajectory and, once it has gone as long without improving as it took to reach
   its best, begins a new one from the start plan: on tight programs a trajectory settles within a
   second in one of many local optima, and the best of several beats one long run.

   Each round first re-optimizes the multipliers for its own subproblem: with F the freed tasks,
   :math:`C_P` the cost of the pinned ones and :math:`r_g` the capacity they leave on GPU g, the
   subproblem is a GAP over F with capacities :math:`r_g`, and any :math:`v \in \mathbb{R}^F`
   bounds it by :math:`L_F(v) = \sum_{t \in F} v_t + \sum_g z_g(v)` (the knapsacks over F within
   :math:`r_g`). A few Polyak subgradient steps from :math:`v = u_F` aimed at
   :math:`T - C_P + 1` (T the round's target) give a much tighter bound than the whole program's
   :math:`u` on neighbourhoods of most GPUs; when :math:`L_F(v) > T - C_P` the round is over without
   a search, otherwise the branch and bound runs with :math:`u_F` replaced by :math:`v` (the pinned
   tasks' multipliers cancel out of every bound).

Only for the programs the knapsack relaxation applies to, with every task required, and only
where the compiled search is built (an optional extension: `available`).

Ideas from the literature, code gpuplan's own: branch and bound on Lagrangian knapsack bounds
(Ross & Soland 1975; Fisher, Jaikumar & Van Wassenhove 1986), fixing variables against a guessed
target that is raised until a plan appears (Posta, Ferland & Michelon 2012), large-neighbourhood
search (Shaw 1998), limited discrepancy search (Harvey & Ginsberg 1995) and restarted local search
(as in GRASP and iterated local search).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from gpuplan.bounds.knapsack import KnapsackLagrangian, local_multipliers
from gpuplan.interrupt import in_context, past, run_stoppable
from gpuplan.native import core as _core
from gpuplan.program.gap import Program


def applicable(program: Program) -> bool:
    """One resource, exact integer loads, no optional task (the drop column is not modelled)."""
    return (
        program.n_resources == 1
        and program.loads_exact
        and program.n_tasks > 0
        and program.n_gpus > 0
        and not bool(program.optional.any())
        and bool(np.all(program.capacity_int >= 0))
    )


@dataclass
class BBResult:
    """One branch-and-bound call: the best plan within the target (None: none found)."""

    assign: np.ndarray | None
    objective_int: int | None
    nodes: int
    exhausted: bool  # the search ran to the end: no plan cheaper than the result (or the target + 1)
    limited: bool = False  # stopped by the time or node limit (not only by the discrepancy limit)


def branch_and_bound(
    program: Program,
    kl: KnapsackLagrangian,
    target_int: int,
    time_limit: float,
    allowed: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    node_limit: int = 0,
    max_discrepancy: int = -1,
    u: np.ndarray | None = None,
) -> BBResult:
    """Find a plan of integer cost <= `target_int` (then the cheapest the search reaches).

    `allowed` (bool [T, G]) narrows the pairs (default: eligible); `fixed` (int [T], -1 = free) pins
    tasks. `node_limit` 0 means none. `max_discrepancy` >= 0 limits the search to branches that leave
    the first-ranked GPU at most that many times (limited discrepancy search; -1: complete). With
    `exhausted` (never set when a limit cut the search), the answer is exact for the narrowed program.
    `u` replaces the multipliers of `kl` (any u gives a valid bound; see `local_multipliers`).
    """
    p = program
    ok = p.eligible if allowed is None else (p.eligible & allowed)
    fix = np.full(p.n_tasks, -1, dtype=np.int64) if fixed is None else np.asarray(fixed, dtype=np.int64)
    pinned = np.flatnonzero(fix >= 0)
    if pinned.size and (
        int(fix.max()) >= p.n_gpus
        or fix.shape != (p.n_tasks,)
        or not bool(np.all(p.eligible[pinned, fix[pinned]]))
    ):
        raise ValueError("branch_and_bound: a task is pinned to a GPU it is not eligible for")
    ok = ok.copy()
    ok[pinned, fix[pinned]] = True
    u = kl.u if u is None else np.asarray(u, dtype=np.float64)
    w = np.ascontiguousarray(p.cost_int - u[:, None], dtype=np.float64)
    out = np.full(p.n_tasks, -1, dtype=np.int64)
    stop = np.zeros(1, dtype=np.uint8)  # set by a watcher once the caller stops the solve
    found, best, nodes, exhausted, limited = run_stoppable(
        lambda: _core().run(
            p.n_tasks,
            p.n_gpus,
            w,
            np.ascontiguousarray(p.cost_int, dtype=np.int64),
            np.ascontiguousarray(ok, dtype=np.uint8),
            np.ascontiguousarray(p.load_int[0], dtype=np.int64),
            np.ascontiguousarray(p.capacity_int[0], dtype=np.int64),
            np.ascontiguousarray(fix),
            out,
            float(u.sum()),
            int(target_int),
            max(0.0, float(time_limit)),
            int(node_limit),
            int(max_discrepancy),
            stop,
        ),
        lambda: stop.fill(1),
    )
    if not found:
        return BBResult(None, None, int(nodes), bool(exhausted), bool(limited))
    return BBResult(out, int(best), int(nodes), bool(exhausted), bool(limited))


@dataclass
class SearchResult:
    """What `search` found: plans in order of improvement, and the bound it proved."""

    plans: list[tuple[float, np.ndarray, int]] = field(default_factory=list)  # (elapsed s, assign, cost)
    proven_bound_int: int | None = None  # no plan costs less (integer units)
    optimal: bool = False  # the last plan is proven optimal
    ladder_levels: int = 0
    lns_rounds: int = 0
    stalled: bool = False  # the LNS stopped early, after `stall_s` without a better plan
    restarts: int = 0  # LNS trajectories begun again from the start plan
    nodes: int = 0


#: Share of the time left that one ladder level may take before the ladder gives way to the LNS.
LADDER_SHARE = 0.25
#: Node limit of one LNS round.
LNS_NODES = 1_500
#: Discrepancy limit of one LNS round (-1: plain depth-first search within the node limit).
LNS_DISCREPANCY = -1
#: Rounds without improvement after which a worker takes a plan of equal cost (plateau move).
LNS_SIDEWAYS_AFTER = 10
#: Share of the GPUs whose tasks the first LNS round frees (then adapted: wider after an empty
#: neighbourhood, narrower after a round that hit the node limit).
LNS_GPU_SHARE = 1.0
#: Subgradient steps that re-optimize the multipliers for each LNS subproblem (0: the whole
#: program's multipliers): on gapd-5, 20 steps (~4 ms) close half the gap between the subproblem's
#: bound and the target, and neighbourhoods of 14-16 of 20 GPUs then take 10-50x fewer nodes.
LNS_LOCAL_STEPS = 20
#: A worker's trajectory begins again after at least this long without improving.
LNS_RESTART_MIN_S = 0.3


def _allowed(kl: KnapsackLagrangian, target_int: int) -> np.ndarray:
    """Pairs that a plan of cost <= target may use (forcing penalty)."""
    tol = 1e-6 * max(1.0, abs(target_int))
    return kl.bound_int + kl.penalty <= target_int + tol


def search(
    program: Program,
    kl: KnapsackLagrangian,
    incumbent: np.ndarray | None,
    deadline: float,
    seed: int = 0,
    ladder: bool = True,
    threads: int = 1,
    stall_s: float | None = None,
) -> SearchResult:
    """Ladder and LNS until `deadline` (module docstring). With `threads` > 1 the other threads run
    the LNS from the start while this one climbs the ladder, then joins them; the C search releases
    the GIL, so the threads use separate cores. With `stall_s`, the LNS also stops once no better
    plan came for that long (so that a proof-capable solver can take the rest of the time)."""
    started = time.monotonic()
    p = program
    res = SearchResult()
    best = None if incumbent is None else np.asarray(incumbent, dtype=np.int64).copy()
    best_int = None if best is None else p.objective_int(best)
    lock = threading.Lock()
    last = [started]  # when the last better plan came
    w = p.cost_int - kl.u[:, None]

    def found(assign: np.ndarray, value: int) -> None:
        """Record a better plan (caller holds the lock)."""
        nonlocal best, best_int
        if not p.is_feasible(assign):  # the C search only returns feasible plans; keep it honest
            raise RuntimeError("branch and bound returned an infeasible plan")
        best, best_int = assign.copy(), value
        res.plans.append((time.monotonic() - started, best.copy(), value))
        last[0] = time.monotonic()

    def climb() -> None:
        """Targets from the Lagrangian bound up; steps double while levels come out empty quickly."""
        target = int(np.ceil(kl.bound_int - 1e-6))
        top = int(np.where(p.eligible, p.cost_int, np.iinfo(np.int64).min).max(axis=1).sum())
        step = 1
        while not past(deadline) and target <= top:
            with lock:
                if res.optimal or (best_int is not None and target >= best_int):
                    return
            level_started = time.monotonic()
            slice_s = LADDER_SHARE * (deadline - level_started)
            r = branch_and_bound(p, kl, target, slice_s, allowed=_allowed(kl, target))
            with lock:
                res.ladder_levels += 1
                res.nodes += r.nodes
                if r.assign is not None and r.objective_int is not None:
                    if best_int is None or r.objective_int < best_int:
                        found(r.assign, r.objective_int)
                    # optimal when the search ran to the end, or when the level below came out
                    # empty (cost <= target and >= target), or on the first level (ceil(L(u)))
                    if r.exhausted or step == 1:
                        res.proven_bound_int = r.objective_int
                        res.optimal = True
                    return
                if not r.exhausted:
                    return
                res.proven_bound_int = max(res.proven_bound_int or target + 1, target + 1)
                if best_int is not None and res.proven_bound_int >= best_int:
                    res.optimal = True
                    return
            if target >= top:
                return  # no plan at all (every plan costs at most `top`)
            step = step * 2 if time.monotonic() - level_started < 0.01 * slice_s else 1
            step = min(step, top - target)
            target += step

    start = best.copy() if best is not None else None  # where every trajectory begins
    start_int = 0 if start is None else p.objective_int(start)

    def draw(current: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """k GPUs of `current` to free, drawn with probability growing with their Lagrangian waste
        (the part of the cost gap they hold)."""
        held = np.bincount(current, weights=w[np.arange(p.n_tasks), current], minlength=p.n_gpus)
        waste = np.maximum(held - kl.z, 0.0) + 1.0
        chosen = np.zeros(p.n_gpus, dtype=bool)
        chosen[rng.choice(p.n_gpus, size=min(k, p.n_gpus), replace=False, p=waste / waste.sum())] = True
        return chosen

    load, cap = p.load_int[0], p.capacity_int[0]

    def local_bound(
        current: np.ndarray, free: np.ndarray, allowed: np.ndarray, target: int
    ) -> tuple[np.ndarray, bool]:
        """Multipliers re-optimized for the subproblem of the `free` tasks (the others pinned to
        `current`), and whether its bound already exceeds `target`."""
        f, pin = np.flatnonzero(free), np.flatnonzero(~free)
        used = np.bincount(current[pin], weights=load[pin, current[pin]], minlength=p.n_gpus)
        offset = int(p.cost_int[pin, current[pin]].sum())
        local, bound = local_multipliers(
            p.cost_int[f],
            load[f],
            p.eligible[f] & allowed[f],
            cap - used.astype(np.int64),
            kl.u[f],
            float(target - offset),
            LNS_LOCAL_STEPS,
        )
        u = kl.u.copy()
        u[f] = local
        return u, bound > target - offset + 1e-6 * max(1.0, abs(target))

    def lns(worker_rng: np.random.Generator) -> None:
        """Free the tasks of k GPUs of this worker's plan and search for a cheaper (or, after a
        stall, an equally cheap) plan under a node limit; k adapts to the outcomes. Each worker
        follows its own trajectory, and begins a new one from the start plan once this one has gone
        as long without improving as it took to reach its best (at least `LNS_RESTART_MIN_S`): the
        trajectories settle in different local optima within a second or so."""
        tasks = np.arange(p.n_tasks)
        k0 = max(2, min(p.n_gpus, round(LNS_GPU_SHARE * p.n_gpus)))
        k = k0
        current: np.ndarray | None = None  # this worker's plan
        current_int = 0
        began = improved = time.monotonic()  # this trajectory's start and last improvement
        idle = 0  # rounds since this worker last improved
        while not past(deadline - 0.01):
            now = time.monotonic()
            with lock:
                if res.optimal or best is None or best_int is None:
                    return
                if stall_s is not None and now - last[0] > stall_s:
                    res.stalled = True
                    return
                if current is None:
                    current = (start if start is not None else best).copy()
                    current_int = p.objective_int(current)
                elif start is not None and now - improved > max(LNS_RESTART_MIN_S, improved - began):
                    current, current_int = start.copy(), start_int
                    began = improved = now
                    k, idle = k0, 0
                    res.restarts += 1
            target = current_int - 1
            sideways = idle >= LNS_SIDEWAYS_AFTER
            if sideways:
                target += 1  # a different plan of the same cost moves the search along the plateau
                idle = 0
            allowed = _allowed(kl, target)
            free = draw(current, k, worker_rng)[current] | ~allowed[tasks, current]
            u, empty = kl.u, False
            if LNS_LOCAL_STEPS > 0:
                u, empty = local_bound(current, free, allowed, target)
            if empty:  # the subproblem's own bound exceeds the target
                r = BBResult(None, None, 0, exhausted=True)
            else:
                r = branch_and_bound(
                    p,
                    kl,
                    target,
                    deadline - time.monotonic(),
                    allowed=allowed,
                    fixed=np.where(free, -1, current),
                    node_limit=LNS_NODES,
                    max_discrepancy=LNS_DISCREPANCY,
                    u=u,
                )
            with lock:
                res.lns_rounds += 1
                res.nodes += r.nodes
                if r.assign is not None and r.objective_int is not None:
                    if r.objective_int < current_int:
                        improved = time.monotonic()
                        idle = 0
                    current, current_int = r.assign.copy(), r.objective_int
                    if best_int is None or r.objective_int < best_int:
                        found(r.assign, r.objective_int)
                    continue
                if not sideways and r.exhausted and bool(free.all()) and target >= best_int - 1:
                    res.proven_bound_int = best_int  # nothing pinned, nothing cheaper: optimal
                    res.optimal = True
                    return
            idle += 1
            # a neighbourhood searched to its limits without a plan: look wider; one cut by the node
            # limit: narrower
            k = max(2, k - 1) if r.limited else min(p.n_gpus, k + 1)

    errors: list[BaseException] = []

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)

    seeds = np.random.SeedSequence(seed).spawn(max(1, threads))
    pool = [
        threading.Thread(target=in_context(guarded), args=(lns, np.random.default_rng(sq)), daemon=True)
        for sq in seeds[1:]
    ]
    for th in pool:
        th.start()
    if ladder and np.isfinite(kl.bound_int):
        guarded(climb)
    guarded(lns, np.random.default_rng(seeds[0]))
    for th in pool:
        th.join()
    if errors:
        raise errors[0]
    return res

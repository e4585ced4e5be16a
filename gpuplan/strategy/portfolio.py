"""The default strategy (`auto`): greedy, LP bound, CP-SAT on the promising pairs, then exact.

1. The warm start from `solve`: greedy, repaired by local search when it leaves required tasks
   unplaced; a feasible fallback within a few seconds on thousands of tasks.
2. LP relaxation by column generation: a proven lower bound (the Lagrangian of its duals), reduced
   costs, and a fractional solution whose rounding is a near-optimal (often infeasible) hint.
3. Restricted CP-SAT: only the few pairs of lowest reduced cost per task (plus the LP's support and
   the hint's own pairs), hinted with the LP rounding. This is where large instances are won: the model
   shrinks tenfold or more while keeping the good assignments; a second phase widens the pairs.
4. Exact CP-SAT over every pair that reduced-cost fixing cannot exclude, hinted with the best
   solution, when the problem is small enough for it to help; it can prove optimality.
5. On programs with at most `EXACT_PAIRS` pairs and two or more workers, SCIP solves the whole
   program in a background thread for the whole time, hinted with the warm start; its knapsack
   cuts and heuristics differ from CP-SAT's, and its proven bound joins the others.

On single-resource programs with at most `EXACT_PAIRS` pairs and small knapsacks (at most
`BB_PAIRS` when every task is required), the assignment constraints are also relaxed (one 0-1
knapsack per GPU, `gpuplan.bounds.knapsack`): its bound is often stronger than the LP's, and its forcing
penalties fix more pairs before the exact phase. When every task is
required, a branch and bound on that relaxation (`gap_bb`) then takes every worker for up to
`BB_SHARE` of the time, in place of SCIP and the restricted phases: one thread climbs a ladder of
targets from the bound up (its first plan is optimal, its exhausted levels raise the proven bound),
the others run a large-neighbourhood search that frees the tasks of a few GPUs at a time (each
round bounded with multipliers re-optimized for its subproblem, each thread restarting its
trajectory when it stops improving). On tight programs it finds plans that
CP-SAT and SCIP do not reach in the time. When its search stalls (`BB_STALL_SHARE` of its time, and
at least `BB_STALL_MIN_S`, without a better plan) or its share ends unproven, the exact CP-SAT phase
follows with SCIP beside it, for their proofs. The branch and bound's search is compiled
(`gpuplan.native._gapbb`, an optional extension): where it is not built, these programs take SCIP
and the phases above instead, and the plan's message and stats say that the branch and bound did
not run.

The bound reported is the best proven one: the LP's, the knapsack Lagrangian bound or the ladder's,
or CP-SAT's or SCIP's bound on the whole program (never a bound from a restricted model).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from gpuplan import native
from gpuplan.backends import gap_bb
from gpuplan.backends.cpsat import CpSatSolver
from gpuplan.backends.scip import ScipRun, scip_available
from gpuplan.bounds.gap import LPResult, fixable, lp_relaxation, reduced_costs
from gpuplan.bounds.knapsack import KnapsackLagrangian, applicable, knapsack_fixable, knapsack_lagrangian
from gpuplan.heuristics.polish import polish
from gpuplan.interrupt import past, requested
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.solution import RawSolution, SolveParams, cost_bound_to_user, proven_status
from gpuplan.status import Status

log = logging.getLogger("gpuplan")

#: Problems with at most this many eligible pairs go straight to exact CP-SAT after the LP.
SMALL_PAIRS = 1_000
#: Problems with at most this many eligible pairs end with an exact phase.
EXACT_PAIRS = 5_000
#: Single-resource programs with at most this many pairs (and small knapsacks, every task required)
#: take the Lagrangian branch and bound, then the exact phase. At 30 s the Yagiura files of 20 and 40
#: GPUs x 400 tasks and 15 x 900 gain most: d40400 +0.20% against +0.56% by the restricted CP-SAT
#: phases, c40400 and c20400 proven optimal in 0.9 s and 2.5 s (whole processes).
BB_PAIRS = 20_000
#: Share of the time left after the LP given to the knapsack Lagrangian's subgradient ascent.
KNAPSACK_SHARE = 0.15
#: Share of the time left after it given to the Lagrangian branch and bound (ladder, then LNS).
BB_SHARE = 0.9
#: The branch and bound hands over to the exact phase (with SCIP beside it) after this share of its
#: time without a better plan.
BB_STALL_SHARE = 0.4
BB_STALL_MIN_S = 4.0


@dataclass
class _State:
    program: Program
    started: float
    best: np.ndarray | None = None
    best_int: int | None = None
    timeline: list[tuple[float, float]] = field(default_factory=list)
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)

    def offer(self, assign: np.ndarray | None, source: str, at: float | None = None) -> bool:
        """Keep `assign` if feasible and better (found at monotonic time `at`, default now)."""
        if assign is None or not self.program.is_feasible(assign):
            return False
        value = self.program.objective_int(assign)
        if self.best_int is not None and value >= self.best_int:
            return False
        self.best, self.best_int = assign.copy(), value
        elapsed = (time.monotonic() if at is None else at) - self.started
        objective = self.program.objective(assign)
        self.timeline.append((elapsed, objective))
        log.info("%6.2fs %-10s objective %s", elapsed, source, objective)
        return True


def _lp_rounding(program: Program, lp: LPResult, fallback: np.ndarray) -> np.ndarray:
    """Each task to the GPU holding most of it in the LP; drop or fallback when none does."""
    x = np.where(program.eligible, lp.x, 0.0)
    best = x.argmax(axis=1)
    mass = x.max(axis=1)
    out = np.where(mass > 1e-9, best, DROPPED)
    missing = (out == DROPPED) & ~program.optional
    out[missing] = fallback[missing]
    return out.astype(np.int64)


def _restricted(program: Program, lp: LPResult, keep: int, extra: np.ndarray) -> Program:
    """The program limited to the `keep` lowest reduced-cost GPUs per task, plus `extra` pairs."""
    rc = reduced_costs(program, lp.lam)
    mask = np.zeros(program.eligible.shape, dtype=bool)
    k = min(keep, program.n_gpus)
    np.put_along_axis(mask, np.argsort(rc, axis=1)[:, :k], True, axis=1)
    mask |= (lp.x > 1e-9) | extra
    return program.replace(eligible=program.eligible & mask)


def _pairs(assign: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    idx = np.flatnonzero(assign >= 0)
    mask[idx, assign[idx]] = True
    return mask


def run_portfolio(program: Program, params: SolveParams, warm: RawSolution) -> RawSolution:
    """Solve with the strategy in the module docstring; returns the best verified-feasible plan."""
    started = time.monotonic()
    deadline = params.deadline
    st = _State(program, started)
    pairs = int(program.eligible.sum())
    if warm.status.has_solution:
        st.offer(warm.assign, "warm start")
    fallback = st.best if st.best is not None else warm.assign

    bound_int: float | None = None
    lp = None
    if not past(deadline):
        lp_deadline = time.monotonic() + 0.3 * max(0.0, deadline - time.monotonic())
        lp = lp_relaxation(
            program,
            lp_deadline,
            extra=_pairs(fallback, program.eligible.shape),
            upper_int=float(st.best_int) if st.best_int is not None else None,
        )
        if lp is not None and np.isfinite(lp.bound_int):
            bound_int = lp.bound_int
            st.stats.update(
                lp_rounds=lp.rounds,
                lp_columns=lp.columns,
                lp_complete=bool(lp.complete),
                lp_time_s=round(lp.time_s, 3),
            )
            log.info(
                "LP bound %s after %d rounds (%.2fs)",
                cost_bound_to_user(program, bound_int),
                lp.rounds,
                lp.time_s,
            )
    exact_bound: float | None = None
    proven = False
    hint = fallback if lp is None else _lp_rounding(program, lp, fallback)
    cpsat = CpSatSolver()
    workers = params.workers
    scip: ScipRun | None = None

    def start_scip() -> ScipRun:
        """SCIP on the whole program in a thread until the deadline, hinted with the best plan."""
        run = ScipRun(program, deadline - 0.05, st.best if st.best is not None else hint)
        run.start()
        st.stats["scip"] = "started"
        return run

    # programs the Lagrangian branch and bound takes (it then has every worker, SCIP none)
    bb_program = pairs <= BB_PAIRS and gap_bb.applicable(program) and applicable(program)
    notes: list[str] = []
    if bb_program and not native.available():
        bb_program = False  # the phases the program would take without it
        notes.append(native.UNAVAILABLE)
        st.stats["bb"] = "unavailable (C extension not built)"
        log.warning("%s; running CP-SAT and SCIP without it", native.UNAVAILABLE)
    bb_threads = workers if bb_program else 1
    if (
        pairs <= EXACT_PAIRS
        and workers >= 2
        and bb_threads == 1
        and not past(deadline - 0.5)
        and scip_available()
    ):
        scip = start_scip()  # beside CP-SAT: its cuts and heuristics differ

    # the knapsack Lagrangian (after SCIP starts: it runs on the other core meanwhile)
    kl: KnapsackLagrangian | None = None
    if (
        lp is not None
        and lp.u is not None
        and (pairs <= EXACT_PAIRS or bb_program)
        and not past(deadline - 1.0)
        and applicable(program)
    ):
        # Polyak steps aim at the incumbent only when it is close: a far one overshoots (on gapd-2 a
        # warm start 1.1% above the LP left the multipliers stuck at the LP duals)
        aim = st.best_int if st.best_int is not None and st.best_int <= 1.01 * lp.bound_int + 1 else None
        kl = knapsack_lagrangian(
            program,
            lp.u,
            float(aim) if aim is not None else None,
            time.monotonic() + KNAPSACK_SHARE * max(0.0, deadline - time.monotonic()),
        )
        st.stats.update(
            knap_iterations=kl.iterations,
            knap_time_s=round(kl.time_s, 3),
            knap_dp="compiled" if native.available() else "numpy",
        )
        if np.isfinite(kl.bound_int) and (bound_int is None or kl.bound_int > bound_int):
            bound_int = kl.bound_int
        log.info(
            "knapsack Lagrangian bound %s after %d steps (%.2fs)",
            cost_bound_to_user(program, kl.bound_int),
            kl.iterations,
            kl.time_s,
        )
    infeasible = False

    # Lagrangian branch and bound: ladder of targets, then LNS (gap_bb), on a share of the time
    bb_ran = False
    if kl is not None and bb_program and not past(deadline - 0.5):
        until = time.monotonic() + BB_SHARE * max(0.0, deadline - time.monotonic())
        bb_started = time.monotonic()
        stall = max(BB_STALL_SHARE * max(0.0, until - bb_started), BB_STALL_MIN_S)
        sr = gap_bb.search(program, kl, st.best, until, params.seed, threads=bb_threads, stall_s=stall)
        bb_ran = True
        for elapsed, assign, _ in sr.plans:
            st.offer(assign, "lagrangian-bb", at=bb_started + elapsed)
        st.stats.update(
            bb_ladder_levels=sr.ladder_levels,
            bb_lns_rounds=sr.lns_rounds,
            bb_lns_restarts=sr.restarts,
            bb_nodes=sr.nodes,
            bb_optimal=bool(sr.optimal),
            bb_stalled=bool(sr.stalled),
            bb_time_s=round(time.monotonic() - bb_started, 3),
        )
        if sr.proven_bound_int is not None and (bound_int is None or sr.proven_bound_int > bound_int):
            bound_int = float(sr.proven_bound_int)
        if sr.optimal and st.best_int is not None and sr.proven_bound_int is not None:
            proven = sr.proven_bound_int >= st.best_int
        log.info(
            "Lagrangian branch and bound: %d ladder levels, %d LNS rounds, %d nodes%s",
            sr.ladder_levels,
            sr.lns_rounds,
            sr.nodes,
            ", optimal" if proven else "",
        )

    def exact_phase(until: float, hint_assign: np.ndarray) -> None:
        nonlocal exact_bound, proven, infeasible
        prog = program
        if lp is not None and st.best is not None and st.best_int is not None:
            drop = fixable(program, lp, float(st.best_int))
            if kl is not None:
                drop |= knapsack_fixable(program, kl, float(st.best_int))
            drop &= ~_pairs(st.best, program.eligible.shape)
            prog = program.replace(eligible=program.eligible & ~drop)
            st.stats["fixed_pairs"] = int(drop.sum())
        res = cpsat.solve(prog, SolveParams(until, workers, params.seed, hint_assign))
        st.offer(res.assign if res.status.has_solution else None, "cpsat")
        if res.status is Status.INFEASIBLE:
            if st.best is None:
                infeasible = True  # the full program (nothing fixed) has no solution
            else:
                proven = True  # nothing beats the incumbent among the unfixed pairs
        elif res.bound is not None:
            exact_bound = res.bound
            proven = res.status is Status.OPTIMAL

    if (
        bb_ran
        and not proven
        and scip is None
        and workers >= 2
        and not past(deadline - 1.0)
        and scip_available()
    ):
        scip = start_scip()  # beside the exact phase, for the time the branch and bound left
    if proven:
        pass
    elif bb_ran or pairs <= SMALL_PAIRS or lp is None:
        exact_phase(deadline, st.best if st.best is not None else hint)
    else:
        big = pairs > EXACT_PAIRS
        # (pairs kept per task, share of the remaining time at which the phase ends)
        phases = ((2, 0.7), (4, 1.0)) if big else ((2, 0.2), (3, 0.45))
        begin = time.monotonic()
        span = max(0.0, deadline - begin)
        current = hint
        for keep, share in phases:
            until = min(deadline, begin + share * span)
            if past(until - 0.05):
                continue
            extra = _pairs(current, program.eligible.shape)
            sub = _restricted(program, lp, keep, extra)
            res = cpsat.solve(sub, SolveParams(until, workers, params.seed, current))
            if res.status.has_solution:
                st.offer(polish(program, res.assign), f"cpsat-k{keep}")
            st.stats[f"restricted_k{keep}_pairs"] = int(sub.eligible.sum())
            current = st.best if st.best is not None else current
        if not big and not past(deadline - 0.1):
            exact_phase(deadline, current)

    if scip is not None:
        if proven or infeasible or requested():
            scip.stop()
        scip.join(max(0.0, deadline - time.monotonic()) + 1.0)
        st.stats["scip"] = scip.error or ("optimal" if scip.optimal else "done")
        if st.offer(scip.assign, "scip"):
            st.stats["scip"] = "improved" if not scip.optimal else "optimal"
        if scip.bound_int is not None and program.loads_exact:
            scip_bound = cost_bound_to_user(program, scip.bound_int)
            exact_bound = scip_bound if exact_bound is None else max(exact_bound, scip_bound)
        if scip.optimal and st.best_int is not None and scip.assign is not None:
            proven = proven or program.objective_int(scip.assign) <= st.best_int

    if infeasible:
        raw = RawSolution.empty(
            program,
            Status.INFEASIBLE,
            "; ".join(["CP-SAT proved that no plan places every required task", *notes]),
        )
        raw.stats = st.stats
        return raw
    if st.best is None:
        raw = RawSolution.empty(
            program,
            Status.UNKNOWN,
            "; ".join(["no plan placing every required task found in time", *notes]),
        )
        raw.bound = cost_bound_to_user(program, bound_int) if bound_int is not None else None
        raw.stats = st.stats
        return raw
    objective = program.objective(st.best)
    bounds = [
        b
        for b in (exact_bound, cost_bound_to_user(program, bound_int) if bound_int is not None else None)
        if b is not None
    ]
    bound = max(bounds) if bounds else None
    status = Status.FEASIBLE
    if proven:
        status = proven_status(program, objective)
    elif (
        bound is not None
        and program.costs_exact
        and st.best_int is not None
        and np.ceil(bound * program.cost_scale - 1e-6) >= st.best_int
    ):
        status = Status.OPTIMAL  # integer costs: the bound rounds up to the objective
    if status is Status.OPTIMAL:
        bound = objective
    return RawSolution(st.best, status, objective, bound, st.timeline, st.stats, "; ".join(notes))

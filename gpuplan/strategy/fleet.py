"""The strategy for a Problem: its one program, solved through its GAP view or by the fleet search.

`solve_fleet` builds the fleet program. When it is a GAP (`gap_view`) and its dense arrays fit, the
GAP strategy solves the view. Otherwise, auto: the aggregated LP and packing bounds first
(`gpuplan.bounds.fleet`) and the node-pattern bound (`gpuplan.bounds.node_patterns`), then the plan
rounded from the node patterns and greedy passes with several task orders and fit weights (the best
kept), then ejection and swap moves that place left-out tasks; when the model is small enough for
the exact CP-SAT model (at most FLEET_EXACT_PAIRS eligible task-GPU pairs), CP-SAT polishes the best
start for the remaining time. 'greedy' stops after the greedy passes; 'cpsat' always runs the exact
model; 'milp' takes GAP programs only (`backends.require`). Priorities too wide to weigh in one
objective are solved tier by tier (`solve_tiered`), and a lexicographic objective too wide for one
weighted sum stage by stage (`solve_lexicographic`). Every plan is decoded by `decode_fleet` and
checked by the one verifier.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gpuplan.backends import require
from gpuplan.bounds.fleet import Packing, fleet_lower_bound, packing_bound
from gpuplan.bounds.node_patterns import NodePatterns, node_pattern_bound
from gpuplan.errors import InputError
from gpuplan.heuristics.config_plan import config_plan
from gpuplan.heuristics.fleet_greedy import (
    FleetState,
    eject_improve,
    fleet_greedy,
    honour_priorities_until,
    state_of,
    swap_improve,
    task_order,
    trade_improve,
)
from gpuplan.heuristics.pattern_plan import lay_over, pattern_plan
from gpuplan.interrupt import past
from gpuplan.models import Matrix, MatrixProblem, Plan, Problem, Status
from gpuplan.program.build import build
from gpuplan.program.compile import scaling_of
from gpuplan.program.decode_fleet import decode_fleet, presolve_plan
from gpuplan.program.fleet import FleetCompiled, FleetProgram, compile_fleet
from gpuplan.program.gap import Program
from gpuplan.program.gap_view import gap_view
from gpuplan.program.lexicographic import LEXICOGRAPHIC_EXACT
from gpuplan.program.priorities import TiersTooWide, tiers
from gpuplan.status import OPTIMALITY_TOLERANCE, relative_gap
from gpuplan.strategy.gap import AUTO_MAX_PAIRS, GapOutcome, search_gap
from gpuplan.strategy.schedule import solve_schedule

log = logging.getLogger("gpuplan")

#: Largest number of eligible (task, GPU) pairs for which auto runs the exact CP-SAT model.
FLEET_EXACT_PAIRS = 20_000

#: Most share of a solve's time for the plan from whole GPU configurations (`config_plan`).
CONFIG_PLAN_SHARE = 0.15

#: Decoding and verifying a plan take about this many times the building of its program (all three
#: are per-task work over the specs, measured 1.6x to 2.2x at 100,000 tasks): that much of the time
#: limit is kept for them, measured on the build of this very solve.
FINISH_PER_BUILD = 2.5
#: The priority repair after the searches gets about this many builds' worth before it.
REPAIR_PER_BUILD = 1.0
#: The most of the time limit the two reserves take together.
RESERVE_SHARE = 0.25

#: What the plan says when the priority repair was stopped by the clock.
REPAIR_CUT = (
    "priority repair cut by the time limit: a left-out task may fit in free room or in place of"
    " lower-priority work"
)


def reserves(time_limit_s: float, built_s: float) -> tuple[float, float]:
    """Seconds kept back from the searches for (decoding and verifying, the priority repair), from
    the time the build took; together at most RESERVE_SHARE of the limit."""
    finish, repair = FINISH_PER_BUILD * built_s, REPAIR_PER_BUILD * built_s
    scale = min(1.0, RESERVE_SHARE * time_limit_s / max(finish + repair, 1e-12))
    return finish * scale, repair * scale


def _pairs(p: FleetProgram) -> int:
    return int((p.eligible_c @ p.usable_per_class()).sum())


def late_tasks(p: FleetProgram, packing: Packing | None) -> np.ndarray | None:
    """bool [T]: tasks beyond what the packing LP places of their kind (larger gangs served first)."""
    if packing is None or packing.used is None:
        return None
    left = np.round(packing.used).astype(np.int64)
    late = np.zeros(p.n_tasks, dtype=bool)
    for t in task_order(p, "gpu"):
        i = packing.item_of_task[t]
        if i < 0:
            continue
        if left[i] >= p.gang[t]:
            left[i] -= p.gang[t]
        else:
            late[t] = True
    return late if late.any() else None


def _starts(
    p: FleetProgram,
    deadline: float,
    hard_deadline: float,
    late: np.ndarray | None,
    hold: Hold = (),
    start: np.ndarray | None = None,
    patterns: NodePatterns | None = None,
    from_patterns: bool = False,
    workers: int = 1,
    configs_s: float = 0.0,
    configs: NodePatterns | None = None,
) -> tuple[FleetState, str]:
    """Greedy passes over a few orders and fit weights, the best by objective; new passes start only
    before `deadline`, and every pass stops at `hard_deadline`. With `start` (the plan of an earlier
    stage, which keeps `hold`), it competes too, and a pass that breaks `hold` does not count. With
    `patterns` (the node-pattern LP, solved), the plan rounded from its columns (`pattern_plan`) comes
    first; with `configs` (its shapes and configurations), the plan from whole GPU configurations
    (`config_plan`, for at most `configs_s` seconds) next.
    `from_patterns`: `start` is the node-pattern plan (a stage of a tier-by-tier solve), which gives
    way only to a pass that drops less: passes that are merely cheaper pack the tier without the
    room the lower tiers need, which the patterns keep."""
    room = start is not None and from_patterns
    start_name = "node patterns" if from_patterns else "previous stage"

    def rank(assign: np.ndarray, kept: bool = False) -> tuple[float, bool, float]:
        """Objective; in `room` mode drop penalties first, and a pass only beats the start when it
        drops less."""
        if not room:
            return 0.0, False, p.objective(assign)
        return float(p.penalty[assign[:, 0] < 0].sum()), not kept, p.objective(assign)

    best: FleetState | None = None
    best_val: tuple[float, bool, float] = (np.inf, True, np.inf)
    name = ""
    if start is not None:
        best, best_val, name = state_of(p, start), rank(start, kept=True), start_name
    variants: list[tuple[str, float, np.ndarray | None]] = [
        (how, balance, None) for how in ("gpu", "dominant") for balance in (1.0, 0.0)
    ]
    if late is not None:
        variants = [("gpu", 1.0, late), ("dominant", 1.0, late), *variants]
    if p.optional.any():
        variants = [("density", 1.0, None), *variants]
    if configs is not None:
        variants = [("configs", 1.0, None), *variants]
    if patterns is not None:
        variants = [("patterns", 1.0, None), *variants]
    for how, balance, lt in variants:
        if best is not None and past(deadline):
            break
        if how == "patterns":
            assert patterns is not None
            st = pattern_plan(p, patterns, deadline=hard_deadline, dive_until=deadline)
        elif how == "configs":
            assert configs is not None
            cut = min(deadline, time.monotonic() + configs_s)
            found = config_plan(p, configs, deadline=cut, workers=workers)
            if found is None:
                continue
            st = found
        else:
            st = fleet_greedy(p, order=task_order(p, how, lt), balance=balance, deadline=hard_deadline)
        broken = np.any((st.assign[:, 0] < 0) & ~p.optional) or not _within(hold, st.assign)
        val = (np.inf, True, np.inf) if broken else rank(st.assign)
        if best is None or val < best_val:
            tag = ", packing order" if lt is not None else ""
            label = {"patterns": "greedy(node patterns)", "configs": "greedy(GPU configurations)"}.get(
                how, f"greedy({how}, balance={balance:g}{tag})"
            )
            best, best_val, name = st, val, label
    assert best is not None
    return best, name


@dataclass
class _Found:
    """What one search over a fleet program found (index space)."""

    assign: np.ndarray | None
    status: Status
    bound: float | None
    warm: float | None
    used: str
    reason: str
    phases: list[str]
    incumbents: list[tuple[float, float]] = field(default_factory=list)
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


@dataclass
class _Guides:
    """What the bounds found that guides the greedy: the packing LP and the node-pattern LP (only
    once solved: the columns of an unfinished one make a poor plan), and its shapes and GPU
    configurations, which the plan from whole GPU configurations needs whether or not it was."""

    packing: Packing | None = None
    patterns: NodePatterns | None = None
    configs: NodePatterns | None = None


def _bounds(
    p: FleetProgram, until: float, patterns_until: float | None = None
) -> tuple[float | None, _Guides, dict[str, bool | int | float | str]]:
    """The node-pattern, aggregated LP and packing bounds (the largest is kept), each stopped at
    `until`, the node-pattern one at `patterns_until` (None: not run; with priority tiers, by the
    lexicographic stages, whose last LP's columns honour the tiers). It runs first, since where
    it applies it is the strongest on the drop penalties and guides the best start (only once its
    LP is solved: the columns of an unfinished one make a poor plan)."""
    stats: dict[str, bool | int | float | str] = {}
    bound = None
    patterns = (
        None
        if patterns_until is None
        else node_pattern_bound(p, deadline=min(until, patterns_until), lexicographic=True)
    )
    configs = patterns
    if patterns is not None:
        stats.update(patterns.stats)
        bound = patterns.bound
        if not patterns.converged:
            patterns = None
    lp = fleet_lower_bound(p, deadline=until)
    if np.isfinite(lp.bound):
        bound = float(lp.bound) if bound is None else max(bound, float(lp.bound))
    stats.update(lp.stats)
    packing = packing_bound(p, deadline=until)
    if packing is not None:
        stats["packing_bound"] = packing.bound
        bound = packing.bound if bound is None else max(bound, packing.bound)
    return bound, _Guides(packing, patterns, configs), stats


def _search(
    p: FleetProgram,
    solver: str,
    t0: float,
    span: float,
    workers: int,
    seed: int,
    with_bounds: bool = True,
    hold: Hold = (),
    start: np.ndarray | None = None,
    repair_until: float | None = None,
    from_patterns: bool = False,
) -> _Found:
    """Bounds, greedy starts, moves and (when small enough or asked for) exact CP-SAT within the
    window [t0, t0 + span]; times are fractions of the window so a stage of a tiered solve gets
    the same phases as a whole solve. The priority repair after them may run until `repair_until`
    (None: to its end); cut there, the stats say so (`priority_repair_cut`). `hold` (a stage of a
    lexicographic solve): the earlier stages' objectives may not get worse (`_within`); CP-SAT holds
    them as constraints, and a start, a round of moves or a priority repair that breaks them is not
    kept. `start`: a plan that keeps them (the earlier stage's), a start among the greedy ones;
    `from_patterns`: it is the node-pattern plan (see `_starts`)."""
    deadline = t0 + span
    stats: dict[str, bool | int | float | str] = {}
    bound, guides = None, _Guides()
    if with_bounds:
        bound, guides, stats = _bounds(p, t0 + 0.35 * span, t0 + 0.25 * span)
    late = late_tasks(p, guides.packing)
    st, name = _starts(
        p,
        t0 + 0.5 * span,
        deadline - 0.02 * span,
        late,
        hold,
        start,
        guides.patterns,
        from_patterns,
        workers,
        CONFIG_PLAN_SHARE * span,
        guides.configs,
    )
    incumbents: list[tuple[float, float]] = []
    feasible = not np.any((st.assign[:, 0] < 0) & ~p.optional)
    warm = p.objective(st.assign) if feasible else None
    if warm is not None:
        incumbents.append((time.monotonic() - t0, warm))
    phases = [name]
    used = "greedy"  # the backend whose plan it is
    pairs = _pairs(p)
    exact = solver == "cpsat" or (solver == "auto" and pairs <= FLEET_EXACT_PAIRS)
    if solver != "greedy":
        # Moves share the time with CP-SAT when it runs, or with the neighbourhood search.
        until = t0 + (0.3 if exact else 0.6) * span
        before = st.assign.copy()
        moved = eject_improve(st, min(until, t0 + 0.6 * span))
        swapped = swap_improve(st, until)
        traded = trade_improve(st, until)
        if (moved or swapped or traded) and not _within(hold, st.assign):
            st, moved, swapped, traded = state_of(p, before), 0, 0, 0
            stats["moves_undone"] = True  # they worsened an earlier stage
        stats["eject_placed"], stats["swap_placed"], stats["trade_placed"] = moved, swapped, traded
        if moved or swapped or traded:
            phases.append("moves")
    assign: np.ndarray | None = st.assign.copy()
    feasible = not np.any((st.assign[:, 0] < 0) & ~p.optional)
    status = Status.FEASIBLE if feasible else Status.UNKNOWN
    objective = p.objective(st.assign) if feasible else None
    if objective is not None and (not incumbents or objective < incumbents[-1][1]):
        incumbents.append((time.monotonic() - t0, objective))
    reason = f"{pairs:,} eligible pairs: greedy starts, LP and packing bounds, ejection and swap moves"
    proven = objective is not None and _proven(objective, bound)
    if solver == "auto" and not exact and feasible and not proven and not past(deadline - 0.05 * span):
        from gpuplan.backends.fleet_lns import fleet_lns

        res_lns = fleet_lns(
            p,
            st.assign,
            deadline=deadline - 0.02 * span,
            workers=workers,
            seed=seed,
            accept=lambda a: _within(hold, a),
        )
        stats.update(res_lns.stats)
        phases.append("lns")
        reason += ", large-neighbourhood search over node sets"
        if objective is not None and res_lns.objective < objective - 1e-9 * max(1.0, abs(objective)):
            assign, objective, used = res_lns.assign, res_lns.objective, "lns"
            incumbents.append((time.monotonic() - t0, objective))
    if exact and not past(deadline):
        from gpuplan.backends.fleet_cpsat import solve_fleet_cpsat

        offset = time.monotonic() - t0
        res = solve_fleet_cpsat(
            p,
            deadline=deadline - 0.02 * span,
            workers=workers,
            seed=seed,
            hint=assign if feasible else None,
            hold=hold,
        )
        stats.update(res.stats)
        phases.append("cpsat")
        reason += ", exact CP-SAT"
        if res.bound is not None:
            bound = res.bound if bound is None else max(bound, res.bound)
        if res.status is Status.INFEASIBLE:
            status, assign, objective = Status.INFEASIBLE, None, None
        elif (
            res.status.has_solution
            and res.objective is not None
            and (objective is None or res.objective <= objective)
            and _within(hold, res.assign)
        ):
            assign, objective, status = res.assign, res.objective, res.status
            incumbents.extend((offset + t, v) for t, v in res.incumbents)
            used = "cpsat"
    if status is Status.FEASIBLE and objective is not None and _proven(objective, bound):
        status = Status.OPTIMAL
    if status is Status.FEASIBLE and assign is not None and p.optional.any():
        # A plan cut short by the clock may leave out a task that lower-priority work keeps out.
        before = assign
        assign, fixed, finished = honour_priorities_until(p, assign, repair_until)
        if not finished:
            stats["priority_repair_cut"] = True
        if fixed and not _within(hold, assign):
            assign, fixed = before, 0
            stats["priority_repair_undone"] = True  # it worsened an earlier stage
        if fixed:
            stats["priority_repairs"] = fixed
            phases.append("priority repair")
            objective = p.objective(assign)
            incumbents.append((time.monotonic() - t0, objective))
    if status.has_solution and assign is not None:
        bad = p.violations(assign)
        if bad:
            raise AssertionError(f"fleet solver produced an infeasible plan: {bad[:3]}")
    return _Found(assign, status, bound, warm, used, reason, phases, incumbents, stats)


#: Relative float noise within which a stage of a lexicographic solve counts an earlier stage's
#: objective as kept (the CP-SAT model holds it in integers, exactly when its scaling is exact).
HOLD_TOLERANCE = 1e-9

#: Earlier stages of a lexicographic solve: (their program, the value it may not exceed).
Hold = Sequence[tuple[FleetProgram, float]]


def _within(hold: Hold, assign: np.ndarray) -> bool:
    """True when `assign` keeps every (program, value) of `hold` within HOLD_TOLERANCE."""
    return all(q.objective(assign) <= v + HOLD_TOLERANCE * max(1.0, abs(v)) for q, v in hold)


def _lex_order(ps: Sequence[FleetProgram], new: np.ndarray, old: np.ndarray) -> int:
    """-1, 0 or 1 as `new` is lexicographically better, equal (within HOLD_TOLERANCE) or worse than
    `old` in the stage objectives `ps`, highest first."""
    for q in ps:
        a, b = q.objective(new), q.objective(old)
        tol = HOLD_TOLERANCE * max(1.0, abs(b))
        if a < b - tol:
            return -1
        if a > b + tol:
            return 1
    return 0


def _proven(objective: float, bound: float | None) -> bool:
    return bound is not None and relative_gap(objective, bound) <= OPTIMALITY_TOLERANCE


@dataclass
class _Staged:
    """A staged search (`_search_staged`): the plan with the stages' values, bounds and proofs."""

    found: _Found  # the final plan; its objective is stage 1's, and so is `found.bound`
    values: list[float]  # each stage's objective at the final plan
    bounds: list[float | None]  # each stage's bound, over the plans keeping the stages before it
    proven: list[bool]  # each stage's value within OPTIMALITY_TOLERANCE of its bound


def _search_staged(
    ps: Sequence[FleetProgram],
    solver: str,
    t0: float,
    span: float,
    workers: int,
    seed: int,
    with_bounds: bool = True,
    repair_until: float | None = None,
    start: np.ndarray | None = None,
) -> _Staged:
    """`_search` stage by stage over the programs of a lexicographic objective's stages (highest
    first, one program when it has one stage), each on an equal share of the time left. Stage k
    starts from the plan so far and holds the objectives of stages 1..k-1 at that plan's values;
    its plan is kept only when it is lexicographically no worse in stages 1..k (`_lex_order`). A
    last priority repair on stage 1's program, kept on the same condition, makes sure no task is
    left out where lower-priority work holds its room. `start`: a plan for the first stage's starts
    to weigh (a tier-by-tier solve's node-pattern plan)."""
    deadline = t0 + span
    if len(ps) == 1:
        f = _search(
            ps[0],
            solver,
            t0,
            span,
            workers,
            seed,
            with_bounds=with_bounds,
            start=start,
            repair_until=repair_until,
            from_patterns=True,
        )
        value = None if f.assign is None or not f.status.has_solution else ps[0].objective(f.assign)
        proven = value is not None and _proven(value, f.bound)
        return _Staged(f, [] if value is None else [value], [f.bound], [proven])
    best: np.ndarray | None = None
    first: _Found | None = None
    phases: list[str] = []
    stats: dict[str, bool | int | float | str] = {}
    incumbents: list[tuple[float, float]] = []
    bounds: list[float | None] = []
    used = []
    for k, p in enumerate(ps):
        now = time.monotonic()
        window = max(0.0, (deadline - now) / (len(ps) - k))
        hold = [] if best is None else [(q, q.objective(best)) for q in ps[:k]]
        bounds_too = with_bounds and k == 0
        first_start = start if k == 0 else best
        f = _search(
            p,
            solver,
            now,
            window,
            workers,
            seed,
            bounds_too,
            hold,
            first_start,
            repair_until=repair_until,
            from_patterns=k == 0,
        )
        phases.extend(f"stage {k + 1}: {phase}" for phase in f.phases)
        stats.update({f"stage{k + 1}_{key}": value for key, value in f.stats.items()})
        bounds.append(f.bound)
        solved = f.assign is not None and f.status.has_solution
        if k == 0:
            first = f
            if not solved:  # no plan with every required task: nothing to order
                f.phases, f.stats = phases, stats
                return _Staged(f, [], bounds, [False])
            best = f.assign
        elif solved and _lex_order(ps[: k + 1], f.assign, best) <= 0:
            best = f.assign
        else:
            stats[f"stage{k + 1}_kept_previous"] = True
        used.append(f.used)
        incumbents.append((time.monotonic() - t0, ps[0].objective(best)))
    assert best is not None and first is not None
    if ps[0].optional.any():
        repaired, fixed, finished = honour_priorities_until(ps[0], best, repair_until)
        if not finished:
            stats["priority_repair_cut"] = True
        if fixed and _lex_order(ps, repaired, best) <= 0:
            best = repaired
            stats["priority_repairs"] = fixed
            phases.append("priority repair")
    bad = ps[0].violations(best)
    if bad:
        raise AssertionError(f"staged solve produced an infeasible plan: {bad[:3]}")
    values = [q.objective(best) for q in ps]
    found = _Found(
        best,
        Status.FEASIBLE,
        bounds[0],
        first.warm,
        "cpsat" if "cpsat" in used else "greedy",
        first.reason,
        phases,
        [*first.incumbents, *incumbents],
        stats,
    )
    proven = [_proven(v, b) for v, b in zip(values, bounds, strict=True)]
    return _Staged(found, values, bounds, proven)


def _stage_stats(c: FleetCompiled, staged: _Staged) -> dict[str, bool | int | float | str]:
    """What the plan says of a staged solve: the stages, their criteria, values, bounds, proofs."""
    out: dict[str, bool | int | float | str] = {"lexicographic_stages": c.stages}
    if c.stages == 1:
        return out
    out["lexicographic_span"] = c.span_units
    for k, (value, bound, proven) in enumerate(
        zip(staged.values, staged.bounds, staged.proven or [False] * len(staged.bounds), strict=False)
    ):
        out[f"stage{k + 1}_objective"] = value
        if bound is not None:
            out[f"stage{k + 1}_bound"] = bound
        out[f"stage{k + 1}_proven"] = proven
    return out


def _stage_message(cs: Sequence[FleetCompiled], staged: _Staged | None) -> str:
    """The plan's message about a lexicographic objective solved in stages (empty for one)."""
    c = cs[0]
    if c.stages == 1:
        return ""
    levels = [k for k, _ in c.terms]
    groups = ", ".join(
        f"{k + 1}: " + " > ".join(name for name, w in ck.terms if w > 0) for k, ck in enumerate(cs)
    )
    text = (
        f"lexicographic objective solved in {c.stages} stages: one weighted sum of its criteria would span"
        f" {c.span_units:.1e} units of {levels[-1]!r}, past the {LEXICOGRAPHIC_EXACT:.0e} that float64"
        f" tells apart; each stage (stage {groups}) keeps the values of the stages before it, and the"
        " plan's objective and bound are stage 1's"
    )
    if staged is not None and staged.values and not all(staged.proven) and staged.proven[:1] == [True]:
        open_ = [str(k + 1) for k, ok in enumerate(staged.proven) if not ok]
        text += f" (stage 1 is proven, stage(s) {', '.join(open_)} not: no bound is claimed)"
    return text


def homeless_plan(c: FleetCompiled, solver: str, started: float) -> Plan | None:
    """The infeasible plan when a required task has no eligible GPU at all, else None."""
    p = c.program
    homeless = np.flatnonzero(~p.eligible_c.any(axis=1) & ~p.optional)
    if not homeless.size:
        return None
    return presolve_plan(
        c,
        solver,
        started,
        "a required task fits on no GPU (or, CPU-only, on no node)",
        f"{homeless.size} required task(s) have no eligible GPU or node",
    )


def _repair_note(stats: dict[str, bool | int | float | str], message: str) -> str:
    """`message`, with REPAIR_CUT joined when a priority repair of the solve was cut by the clock."""
    cut = stats.get("priority_repair_cut") is True  # the last repair's; a stage's is repaired after
    return "; ".join(m for m in (message, REPAIR_CUT if cut else "") if m)


def solve_fleet(
    problem: Problem | MatrixProblem | Matrix,
    *,
    solver: str,
    time_limit_s: float,
    workers: int | None,
    seed: int,
    started: float,
) -> Plan:
    """Build the one program of `problem` (a Problem or the matrix form) and solve it: its GAP view
    with the GAP strategy when the program is a GAP (`gap_view`) and its dense arrays fit (the
    matrix form's always: they are its input), else the fleet search (module docstring); priorities
    too wide to weigh exactly are solved tier by tier (`solve_tiered`). One decode and the one
    verifier either way."""
    from gpuplan.program.verify import verify_timed

    workers = workers or os.cpu_count() or 1
    try:
        began = time.monotonic()
        c = build(problem)
        built = time.monotonic() - began
        if c.times is not None:  # a scheduled problem: plans say when
            assert isinstance(problem, Problem)
            if c.stages > 1:
                raise InputError(
                    "objective",
                    f"a lexicographic objective this wide ({_stage_message([c], None)}) is not available"
                    " for a scheduled problem: use fewer criteria or 'weighted'",
                )
            return solve_schedule(
                c,
                problem,
                solver=solver,
                time_limit_s=time_limit_s,
                workers=workers,
                seed=seed,
                started=started,
            )
        if c.stages > 1:  # a lexicographic objective too wide for one weighted sum
            assert isinstance(problem, Problem)  # the matrix form's objective is its cost
            cs = [c, *(compile_fleet(problem, stage=k) for k in range(1, c.stages))]
            if solver == "milp":
                raise InputError("solver", f"'milp' cannot take this program: {_stage_message(cs, None)}")
            return solve_lexicographic(
                problem,
                cs,
                solver=solver,
                time_limit_s=time_limit_s,
                workers=workers,
                seed=seed,
                started=started,
                built_s=time.monotonic() - began,
            )
        # The view scales the penalties to integers: they may overflow there even when exact in floats.
        dense = c.program.n_tasks * c.program.n_gpus <= AUTO_MAX_PAIRS or not c.program.shares
        view = gap_view(c) if dense else None
    except TiersTooWide as why:
        assert isinstance(problem, Problem)  # the matrix form has no optional tasks
        if problem.scheduled:
            raise InputError(
                "tasks.priority",
                f"priority tiers too wide to weigh in one objective ({why}) are not available for a"
                " scheduled problem: use fewer priority levels",
            ) from None
        if solver == "milp":  # the tier-by-tier solve runs fleet programs, which milp does not take
            raise InputError(
                "solver", f"'milp' cannot take this program: its priority tiers ({why}) are too wide to weigh"
            ) from None
        return solve_tiered(
            problem,
            str(why),
            solver=solver,
            time_limit_s=time_limit_s,
            workers=workers,
            seed=seed,
            started=started,
            built_s=time.monotonic() - began,  # the build that found the tiers too wide
        )
    if solver != "auto":
        require(solver, c.program if view is None else view.program)
    plan = homeless_plan(c, solver, started)
    if plan is None and view is not None:
        out = search_gap(
            view.program,
            solver=solver,
            time_limit_s=time_limit_s,
            workers=workers,
            seed=seed,
            started=started,
        )
        plan = _decode_gap(c, view.program, out, solver, started)
    elif plan is None:
        if not c.program.shares:
            raise AssertionError("the matrix form's program is a GAP; the fleet search does not take it")
        finish, repair = reserves(time_limit_s, built)
        f = _search(
            c.program,
            solver,
            started,
            time_limit_s - finish - repair,
            workers,
            seed,
            repair_until=started + time_limit_s - finish,
        )
        plan = decode_fleet(
            c,
            f.assign,
            f.status,
            f.bound,
            solver=f.used,
            phases=f.phases,
            requested=solver,
            reason=f.reason,
            started=started,
            warm=f.warm,
            incumbents=f.incumbents,
            stats=f.stats,
            message=_repair_note(
                f.stats,
                ""
                if f.status.has_solution or f.status is Status.INFEASIBLE
                else "no plan placing every required task was found within the time limit",
            ),
        )
    plan.stats["build_s"] = round(built, 4)
    verify_timed(plan, problem)
    return plan


def solve_lexicographic(
    problem: Problem,
    cs: Sequence[FleetCompiled],
    *,
    solver: str,
    time_limit_s: float,
    workers: int,
    seed: int,
    started: float,
    built_s: float = 0.0,
) -> Plan:
    r"""A lexicographic objective too wide for one weighted sum, solved stage by stage
    (`_search_staged`; the stages are cut by :mod:`gpuplan.program.lexicographic`), exact at any
    size: no weight spans more than float64 tells apart.

    Stage :math:`k` weighs its levels :math:`s_k` with their stage weights and the priorities with
    the tier penalties built over that stage's span (`compile_fleet(problem, stage=k)`):

    .. math::

        g_k(x) = \sum_{i \in s_k} \lambda^{(k)}_i c_i(x) + \sum_{t 	ext{ dropped}} p^{(k)}_t ,
        \qquad x^{(k)} \in rg\min \{\, g_k(x) : x 	ext{ feasible},\ g_j(x) \le g_j(x^{(k-1)})
        \ (j < k) \,\},

    with :math:`x^{(0)}` none and stage 1 free. `built_s`, the time the build took, sizes the time kept
    for the last priority repair, decoding and verification (`reserves`). The tier bases of every
    :math:`g_j` exceed its criteria, so holding :math:`g_1` keeps the priorities; a later stage's plan
    replaces the earlier one only when :math:`(g_1, \dots, g_k)` is lexicographically no worse (within
    HOLD_TOLERANCE), so the final plan :math:`\hat x` is no worse than any stage's result. Its
    reported objective is :math:`g_1(\hat x)`, stage 1's weighted sum (the levels of later stages
    weigh 0 in it, `weight_<criterion>` = 0, and their values are in `stats`). Its bound
    :math:`L_1` is stage 1's, a lower bound of :math:`g_1` over every feasible plan (the LP,
    packing and CP-SAT bounds of stage 1, which holds nothing). A later stage's bound :math:`L_k`
    bounds :math:`g_k` only over the plans that keep :math:`g_j \le g_j(\hat x)`, not the
    objective: it is reported as `stats['stage<k>_bound']` only. The plan is `optimal` when every
    stage is proven (:math:`g_k(\hat x)` within the tolerance of :math:`L_k`: then no plan is
    lexicographically better in :math:`(g_1, \dots, g_m)`); when stage 1 is proven but a later one
    is not, :math:`L_1` would make the plan look optimal, so no bound is claimed (the message
    says so).
    """
    from gpuplan.program.verify import verify, verify_timed

    c = cs[0]
    plan = homeless_plan(c, solver, started)
    if plan is not None:
        verify(plan, problem)
        return plan
    finish, repair = reserves(time_limit_s, built_s)
    staged = _search_staged(
        [ck.program for ck in cs],
        solver,
        started,
        time_limit_s - finish - repair,
        workers,
        seed,
        repair_until=started + time_limit_s - finish,
    )
    f = staged.found
    bound = f.bound
    if staged.values and not all(staged.proven) and staged.proven[0]:
        bound = None  # stage 1 alone is closed: its bound would claim the later stages optimal
    stats = {**f.stats, **_stage_stats(c, staged)}
    plan = decode_fleet(
        c,
        f.assign,
        f.status,
        bound,
        solver="staged",
        phases=f.phases,
        requested=solver,
        reason=f.reason + f", in {c.stages} lexicographic stages",
        started=started,
        warm=f.warm,
        incumbents=f.incumbents,
        stats=stats,
        message=_repair_note(
            stats,
            "; ".join(
                m
                for m in (
                    _stage_message(cs, staged),
                    ""
                    if f.status.has_solution or f.status is Status.INFEASIBLE
                    else "no plan placing every required task was found within the time limit",
                )
                if m
            ),
        ),
    )
    plan.stats["build_s"] = round(built_s, 4)
    verify_timed(plan, problem)
    return plan


def _decode_gap(c: FleetCompiled, view: Program, out: GapOutcome, solver: str, started: float) -> Plan:
    """A GAP strategy's answer (one GPU per task) decoded as a fleet plan, with the view's scaling."""
    raw = out.raw
    assign = raw.assign[:, None].copy() if raw.status.has_solution else None
    return decode_fleet(
        c,
        assign,
        raw.status,
        raw.bound,
        solver=out.name,
        phases=out.phases,
        requested=solver,
        reason=out.reason,
        started=started,
        warm=out.warm,
        incumbents=raw.incumbents,
        stats=raw.stats,
        message=raw.message,
        scaling=scaling_of(view),
    )


#: Share of a tiered solve's time for the bound of the whole program.
TIERED_BOUND_SHARE = 0.15
#: Shares of a tiered solve's time: until when the node-pattern stages may run, and when its plan
#: must be rounded; and the share kept at the end for the bound over the plan's tier counts.
TIERED_PATTERN_SHARE = 0.5
TIERED_PATTERN_PLAN_SHARE = 0.6
TIERED_TIER_BOUND_SHARE = 0.08


def solve_tiered(
    problem: Problem,
    why: str,
    *,
    solver: str,
    time_limit_s: float,
    workers: int,
    seed: int,
    started: float,
    built_s: float = 0.0,
) -> Plan:
    r"""Priorities as a true lexicographic order at any size: one stage per priority tier.

    Stage j (tiers from the highest down) solves the program of the required tasks, the optional
    tasks placed by the stages before it, now required (so each higher tier keeps what it won), and
    the optional tasks of tier j; lower tiers are absent, so a stage weighs a single tier and cannot
    overflow. Tasks placed before keep their GPUs unless the stage moves them (their placement is
    the greedy's first choice). A stage that finds no plan with every required task keeps the
    previous stage's plan. The plan is then priced on the whole program with every tier weighed
    like the first (`flat_penalties`); its bound is the larger of that program's LP/packing bound
    (a lower bound on the price of every plan) and, when the node-pattern stages apply, the bound
    over the plans placing, tier by tier, at least as many tasks as this one
    (`NodePatterns.tier_bound`): a lower bound on the price of the tier-optimal plans, whose rounded
    columns (`pattern_plan`) also give each stage a start (`lay_over`). `built_s` (the build that found
    the tiers too wide) and this compile size the time kept for the last priority repair, decoding
    and verification (`reserves`).
    """
    from gpuplan.program.verify import verify, verify_timed

    began = time.monotonic()
    c = compile_fleet(problem, flat_tiers=True)
    compiled_s = time.monotonic() - began
    finish, repair = reserves(time_limit_s, max(built_s, compiled_s))
    deadline = started + time_limit_s - finish - repair
    p = c.program
    plan = homeless_plan(c, solver, started)
    if plan is not None:
        verify(plan, problem)
        return plan
    stats: dict[str, bool | int | float | str] = {}
    candidates = p.optional & p.has_home()
    levels = tiers(candidates, p.priority)
    pat, follow = _tier_patterns(p, started, time_limit_s, deadline, stats, workers)
    if pat is not None:
        deadline -= TIERED_TIER_BOUND_SHARE * time_limit_s
    # The bound over every plan, after the pattern stages (which need the time more, and bound the
    # tier-optimal plans far closer once the plan's tier counts reach theirs).
    bound, _, bound_stats = _bounds(p, time.monotonic() + TIERED_BOUND_SHARE * time_limit_s)
    stats.update(bound_stats)
    best: np.ndarray | None = None
    status = Status.UNKNOWN
    incumbents: list[tuple[float, float]] = []
    used: list[str] = []
    for j, level in enumerate(levels):
        laid = None
        if follow is not None:  # the pattern plan's tasks of this tier, where the stages above left room
            assert pat is not None
            mine = candidates & (p.priority == level)
            laid = lay_over(
                p,
                pat,
                best,
                follow,
                mine,
                deadline,
            )
            if j < len(levels) - 1 and np.all(laid[mine, 0] >= 0):
                # The whole tier is placed: a search could only lower its cost, which weighs less
                # than any lower tier's task, and would move it out of the room the patterns keep.
                best = laid
                status = Status.FEASIBLE
                used.append(f"tier {level}: node patterns (every task placed)")
                incumbents.append((time.monotonic() - started, p.objective(best)))
                continue
        keep = ~p.optional | (candidates & (p.priority == level))
        if best is not None:
            keep |= best[:, 0] >= 0
        rows = np.flatnonzero(keep)
        sub = _stage_problem(problem, c, rows, best)
        sc = compile_fleet(sub, flat_tiers=True)  # one optional tier: flat is exact
        scs = [sc, *(compile_fleet(sub, flat_tiers=True, stage=k) for k in range(1, sc.stages))]
        now = time.monotonic()
        window = max(0.0, (deadline - now) / (len(levels) - j))
        start = None if laid is None else laid[rows, : sc.program.max_gang]
        f = _search_staged(
            [x.program for x in scs],
            solver,
            now,
            window,
            workers,
            seed,
            False,
            repair_until=now + window,
            start=start,
        ).found
        used.extend(f"tier {level}: {phase}" for phase in f.phases)
        for key, value in f.stats.items():
            stats[f"tier{level}_{key}"] = value
        if f.assign is not None and f.status.has_solution:
            full = p.empty_assign()
            full[rows, : f.assign.shape[1]] = f.assign
            if best is not None and not _keeps(best, full, p):
                raise AssertionError(f"tier {level}: a stage dropped a task an earlier tier placed")
            best = full
            status = Status.FEASIBLE
        elif best is None:
            status = f.status  # infeasible or unknown for the required tasks
            break
        if best is not None:
            incumbents.append((time.monotonic() - started, p.objective(best)))
    if best is not None and p.optional.any():
        # Later tiers may move earlier tiers' tasks (they are required there, not fixed): a task a
        # tier left out can then fit where lower-priority work went. One repair over every tier;
        # each of its changes places a task of a higher tier than any it takes off.
        repaired, fixed, finished = honour_priorities_until(p, best, started + time_limit_s - finish)
        if not finished:
            stats["priority_repair_cut"] = True
        if fixed:
            best = repaired
            stats["priority_repairs"] = fixed
            used.append("priority repair")
    if pat is not None and best is not None:
        upper = pat.tier_bound(pat.tier_counts(best), deadline=started + time_limit_s - finish)
        tier_bound = float(p.penalty.sum() - upper)
        stats["pattern_tier_bound"] = tier_bound
        bound = tier_bound if bound is None else max(bound, tier_bound)
    objective = None if best is None else p.objective(best)
    message = ""
    if c.stages > 1:
        cs = [c, *(compile_fleet(problem, flat_tiers=True, stage=k) for k in range(1, c.stages))]
        stats.update(lexicographic_stages=c.stages, lexicographic_span=c.span_units)
        message = _stage_message(cs, None)
        if objective is not None and _proven(objective, bound):
            bound = None  # the bound is stage 1's: it would claim the later stages optimal
            message += " (stage 1 is proven, the later stages not: no bound is claimed)"
    if objective is not None and _proven(objective, bound):
        status = Status.OPTIMAL
    stats["priority_tiers"] = len(levels)
    plan = decode_fleet(
        c,
        best,
        status,
        bound,
        solver="tiered",
        phases=used,
        requested=solver,
        reason=f"{why}: too wide to weigh exactly, solved tier by tier, highest priority first",
        started=started,
        warm=incumbents[0][1] if incumbents else None,
        incumbents=incumbents,
        stats=stats,
        message=_repair_note(
            stats,
            "; ".join(
                m
                for m in (
                    message,
                    ""
                    if status.has_solution or status is Status.INFEASIBLE
                    else "no plan placing every required task was found within the time limit",
                )
                if m
            ),
        ),
    )
    plan.stats["build_s"] = round(built_s + compiled_s, 4)  # the build that found the tiers, then this one
    verify_timed(plan, problem)
    return plan


def _tier_patterns(
    p: FleetProgram,
    started: float,
    time_limit_s: float,
    deadline: float,
    stats: dict[str, bool | int | float | str],
    workers: int = 1,
) -> tuple[NodePatterns | None, np.ndarray | None]:
    """The node-pattern stages of a tiered solve's flat program and their plan; (None, None) when
    they do not apply, or when a tier's tasks differ in drop penalty (a stage then need not place
    the most tasks of its tier, which the bound over tier counts assumes). The plan is the better
    of the one rounded from the LP's columns and the one from whole GPU configurations; when the
    LP is not solved in time its columns make a poor plan, and only the latter is tried (or, when
    it finds nothing, (None, None): the time kept for the bound over tier counts, weak then, goes to
    the stages)."""
    candidates = p.optional & p.has_home()
    for level in tiers(candidates, p.priority):
        pen = p.penalty[candidates & (p.priority == level)]
        if pen.size and pen.max() != pen.min():
            stats["pattern_skipped"] = "drop penalties differ within a tier"
            return None, None
    pat = node_pattern_bound(
        p, deadline=min(deadline, started + TIERED_PATTERN_SHARE * time_limit_s), lexicographic=True
    )
    if pat is None or pat.need is None:
        return None, None
    stats.update({k: v for k, v in pat.stats.items() if k != "pattern_bound"})
    until = min(deadline, started + TIERED_PATTERN_PLAN_SHARE * time_limit_s)
    follow = None
    if pat.converged:
        follow = pattern_plan(p, pat, deadline=until, dive_until=until).assign
        stats["pattern_plan_tier_counts"] = ",".join(str(int(z)) for z in pat.tier_counts(follow))
    else:
        stats["pattern_skipped"] = "the stages' LP was not solved in time"
    # The plan from whole GPU configurations when it places more, tier by tier from the highest.
    cut = min(until, time.monotonic() + CONFIG_PLAN_SHARE * time_limit_s)
    other = config_plan(p, pat, deadline=cut, workers=workers)
    if other is not None:
        stats["config_plan_tier_counts"] = ",".join(str(int(z)) for z in pat.tier_counts(other.assign))
        if follow is None or _tier_key(pat, p, other.assign) > _tier_key(pat, p, follow):
            follow = other.assign
            stats["pattern_plan"] = "GPU configurations"
    if follow is None:
        return None, None
    return pat, follow


def _tier_key(pat: NodePatterns, p: FleetProgram, assign: np.ndarray) -> tuple[int | float, ...]:
    """Larger is better: the tasks placed per tier from the highest, then less objective."""
    return (*(int(z) for z in pat.tier_counts(assign)), -p.objective(assign))


def _keeps(before: np.ndarray, after: np.ndarray, p: FleetProgram) -> bool:
    """True when `after` places every optional task `before` placed (the higher tiers' gains)."""
    return bool(np.all((after[:, 0] >= 0) | (before[:, 0] < 0) | ~p.optional))


def _stage_problem(problem: Problem, c: FleetCompiled, rows: np.ndarray, best: np.ndarray | None) -> Problem:
    """The tasks of `rows`; those placed in `best` become required and start where they are."""
    tasks = []
    for t in rows:
        task = problem.tasks[t]
        if best is not None and best[t, 0] >= 0 and task.optional:
            update: dict[str, object] = {"optional": False}
            if task.current_gpus is None:
                update["current_gpus"] = [c.gpu_ids[g] for g in best[t] if g >= 0]
            task = task.model_copy(update=update)
        tasks.append(task)
    return problem.model_copy(update={"tasks": tasks})


__all__ = [
    "FLEET_EXACT_PAIRS",
    "HOLD_TOLERANCE",
    "homeless_plan",
    "solve_fleet",
    "solve_lexicographic",
    "solve_tiered",
]

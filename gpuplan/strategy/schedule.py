r"""The strategy for a scheduled problem: event and list schedules, then the exact CP-SAT model, within the
limit; the bound is the larger of the cheap one and CP-SAT's.

Auto: the parallel (event-driven) schedule (`heuristics/event_schedule.py`) under each rule, by
best fit and then (when placements can strand capacity: shared GPUs or nodes of several GPUs) by
fragmentation-aware placement (`heuristics/fragmentation.py`), then the serial list schedule
(`heuristics/list_schedule.py`), which backfills and is usually better, under each rule, the best
kept. The rules go in `rules_for`'s order (the one suited to the objective first: a large program
may have time for one only). A rule starts while the first half of the time lasts when a search
follows (in auto, unless past `LNS_MAX_PAIRS`; 'greedy' has none), else while the whole limit
does, and only when the slowest rule of its scheme so far would still end before the cut (5% before
the limit; a scheme expected to be cut is passed over for the next, which may be faster). The
serial scheme costs
about `SERIAL_S_PER_PAIR` seconds per eligible (task, GPU) pair and rule (measured: 1 ms per task
at 1,000 GPUs, more with many breakpoints), so it runs only when one rule is expected to fit in that
half (`serial_fits`); on larger programs the parallel scheme alone gives the plan (on the openb
trace, 25,000 tasks on 6,212 GPUs: about 3 s a rule, against well over 60 s for one serial rule).
Then, when the program has at most `SCHEDULE_EXACT_PAIRS` eligible pairs, the CP-SAT interval
model (`backends/schedule_cpsat.py`) hinted with the best for the rest of the time, unless the best
already meets the bound below (then it is proven optimal and nothing is left to search). On larger
programs, up to `LNS_MAX_PAIRS`, auto gives the rest of the time to a large-neighbourhood search over
time windows and node sets (`backends/schedule_lns.py`: each neighbourhood solved exactly by CP-SAT,
the rest of the schedule fixed), again unless the best meets the bound.

When the program is disjunctive and its objective the makespan alone (`backends/schedule_shop.py`:
one task per GPU at a time, every task required, node CPU and memory never binding; the flexible
job shop), CP-SAT or the neighbourhood search leave the last `SHOP_SHARE` of the limit to the shop
search (a tabu search in C, `workers` runs side by side), unless the bound proves their best
schedule; its runs start from that schedule and, every second one, from the rules' best (a run
from CP-SAT's best alone left mk06 at 61 where runs from the list schedule reach 58 to 60, and
with a third of the limit CP-SAT lost mk02's optimum: 27, proven 26 before). Its steps evaluate a
few moves exactly (6,000 to 28,000 steps a second per run on the benchmark's mk02-mk15, 58-284
tasks, fewer on the larger) and it reaches schedules that CP-SAT's neighbourhoods reach later or not at all
(`benchmarks/results/fjsp-30s.md`).
After rather than before: started from the shop search's schedule, CP-SAT lost mk02's optimum (27
against 26, proven before) and was worse on mk05 (175 against 173) in runs at seed 0 with the shop
search taking the first third or half of the limit. 'greedy' stops
after the list schedules; 'cpsat' always runs the model; 'milp' does not take scheduled programs.
The bound without CP-SAT's proof:

.. math::

    \mathrm{LB} = \sum_t \min\big(k_t \min_{c \text{ usable}} \mathrm{cost}_{tc} + \phi_t,\;
    p_t^{\mathrm{drop}}\big) + \mathrm{LB}_{\mathrm{time}}

(each task's cheapest placement or its drop penalty, ignoring capacity, plus the time terms' bound
of `program.schedule.lower_bound`; gpus_used, nodes_used and migration add nothing negative). Every
plan is decoded with its start times and checked by the one verifier.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

from gpuplan.errors import InputError
from gpuplan.heuristics.event_schedule import event_schedule
from gpuplan.heuristics.list_schedule import list_schedule, rank, rules_for
from gpuplan.interrupt import past
from gpuplan.models import Plan, Problem, Status
from gpuplan.program.decode_fleet import decode_fleet, presolve_plan
from gpuplan.program.fleet import FleetCompiled
from gpuplan.program.schedule import (
    ScheduleProgram,
    fastest,
    heads,
    late_chain,
    lower_bound,
    objective,
    schedule_program,
    violations,
)
from gpuplan.status import OPTIMALITY_TOLERANCE, relative_gap

#: Largest number of eligible (task, GPU) pairs for which auto runs the exact CP-SAT model.
SCHEDULE_EXACT_PAIRS = 5_000

#: Share of the limit the list schedules may start in (each one runs to its end).
LIST_SHARE = 0.5

#: Fewest seconds left after the heuristics for the neighbourhood search to start.
LNS_MIN_S = 0.5

#: Most eligible (task, GPU) pairs for which auto runs the neighbourhood search after the rules; past
#: it the rules keep the whole limit (the openb trace at peak 2, 154 million pairs: in 1,000
#: neighbourhoods none improved its event schedule, and the search took the process from 47 s and
#: 185 MB to 59 s and 274 MB).
LNS_MAX_PAIRS = 2_000_000

#: Share of the limit the shop search (disjunctive programs) gets at the end, after CP-SAT or the
#: neighbourhood search (unless they prove their schedule).
SHOP_SHARE = 0.25

#: Estimated seconds of one serial list schedule per eligible (task, GPU) pair (see the docstring).
SERIAL_S_PER_PAIR = 1e-6


def serial_fits(pairs: int, time_limit_s: float) -> bool:
    """Is one serial list schedule of a program with `pairs` eligible (task, GPU) pairs expected
    to end within the list schedules' share of the limit? (A size rule: no clock is read.)"""
    return pairs * SERIAL_S_PER_PAIR <= LIST_SHARE * time_limit_s


def shop_fits(sp: ScheduleProgram, stats: dict[str, bool | int | float | str]) -> bool:
    """Does the shop search take `sp` (disjunctive with a makespan-only objective) and is its
    compiled core built? When only the core is missing, `stats['shop']` says so."""
    from gpuplan.backends.schedule_shop import disjunctive_reason
    from gpuplan.native import shop_available

    if disjunctive_reason(sp):
        return False
    if not shop_available():
        stats["shop"] = "unavailable (C extension not built)"
        return False
    return True


def placement_floor(sp: ScheduleProgram) -> float:
    """Each task's cheapest placement or its drop penalty, capacity ignored (module docstring)."""
    f = sp.fleet
    usable = f.usable_per_class() > 0
    cost = np.where(f.eligible_c & usable[None, :], f.cost_c, np.inf).min(axis=1, initial=np.inf)
    place = f.gang * cost + f.transfer_each
    drop = np.where(f.optional, f.penalty, np.inf)
    return float(np.minimum(place, drop).sum())


def solve_schedule(
    c: FleetCompiled,
    problem: Problem,
    *,
    solver: str,
    time_limit_s: float,
    workers: int,
    seed: int,
    started: float,
) -> Plan:
    """Schedule `problem` (module docstring): decoded with start times and verified."""
    from gpuplan.program.verify import verify

    if solver == "milp":
        raise InputError(
            "solver", "'milp' cannot take this program: it is scheduled (use auto, greedy or cpsat)"
        )
    deadline = started + time_limit_s
    sp = schedule_program(c)
    chain = late_chain(sp)
    if chain:
        return _late_plan(c, problem, sp, chain, solver, started)
    f = sp.fleet
    pairs = int((f.eligible_c @ f.usable_per_class()).sum())
    stats: dict[str, bool | int | float | str] = {"schedule_pairs": pairs}
    placement, time_lb = placement_floor(sp), lower_bound(sp)
    floor = placement + time_lb
    bound = floor if np.isfinite(floor) else None
    phases: list[str] = []
    incumbents: list[tuple[float, float]] = []
    best: tuple[int, float, np.ndarray, np.ndarray] | None = None  # (broken rules, objective, ...)
    used = ""
    serial = serial_fits(pairs, time_limit_s)
    stats["schedule_serial"] = serial
    rules = rules_for(sp)
    tries = _tries(sp, rules, serial)
    exact = solver == "cpsat" or (solver == "auto" and pairs <= SCHEDULE_EXACT_PAIRS)
    # the neighbourhood search follows the rules on programs between the exact model and the trace
    search = solver == "auto" and not exact and pairs <= LNS_MAX_PAIRS
    rules_end = started + (LIST_SHARE if exact or search else 1.0) * time_limit_s  # no new rule after
    stop = deadline - 0.05 * time_limit_s  # a rule still running then is cut (a partial plan)
    longest: dict[str, float] = {}  # seconds of each scheme's slowest rule so far: its next estimate
    for scheme, run, label, rule in tries:
        if best is not None and past(rules_end):
            break
        if best is not None and time.monotonic() + longest.get(scheme, 0.0) > stop:
            continue  # expected to be cut: a faster scheme's rule may still fit
        began = time.monotonic()
        assign, start = run(sp, rule, deadline=stop)
        longest[scheme] = max(longest.get(scheme, 0.0), time.monotonic() - began)
        key = rank(sp, assign, start)
        stats[f"{scheme}_{rule}_objective"] = round(key[1], 6)
        if best is None or key < best[:2]:
            best, used = (*key, assign, start), f"{label} ({rule})"
    assert best is not None
    phases.append(used)
    feasible = best[0] == 0
    warm = best[1] if feasible else None
    if warm is not None:
        incumbents.append((time.monotonic() - started, warm))
    assign, start = best[2], best[3]
    status = Status.FEASIBLE if feasible else Status.UNKNOWN
    name = "greedy"
    reason = f"{pairs:,} eligible pairs: event schedules"
    reason += " (best-fit and fragmentation-aware)" if any(t[0] == "event_frag" for t in tries) else ""
    reason += " and list schedules" if serial else ""
    reason += f" ({', '.join(rules)})"
    proven_warm = warm is not None and bound is not None and relative_gap(warm, bound) <= OPTIMALITY_TOLERANCE
    if exact and proven_warm:
        exact = False  # the list schedule meets the bound: proven, nothing left to search
        reason += "; it meets the bound, so CP-SAT is not run"
    value = warm
    rules_best = (assign, start)
    shop = (exact or search) and warm is not None and not proven_warm and shop_fits(sp, stats)
    keep = SHOP_SHARE * time_limit_s if shop else 0.0  # the shop search's time, at the end
    if search and warm is not None and not proven_warm and stop - keep - time.monotonic() > LNS_MIN_S:
        from gpuplan.backends.schedule_lns import schedule_lns

        found = schedule_lns(sp, assign, start, deadline=stop - keep, bound=bound, workers=workers, seed=seed)
        stats.update(found.stats)
        phases.append("neighbourhood search")
        reason += ", then a neighbourhood search over time windows and node sets"
        if found.objective < value:
            assign, start, name, value = found.assign, found.start, "lns", found.objective
            incumbents.append((time.monotonic() - started, found.objective))
    left = deadline - time.monotonic()
    if exact and left > 0.05:
        from gpuplan.backends.schedule_cpsat import solve_schedule_cpsat

        res = solve_schedule_cpsat(
            sp,
            time_limit=left - keep - 0.02 * time_limit_s,
            workers=workers,
            seed=seed,
            hint=(assign, start),
        )
        stats.update(res.stats)
        stats["cpsat_note"] = res.note
        phases.append("cpsat")
        reason += ", exact CP-SAT with interval variables"
        if res.bound is not None:
            bound = res.bound if bound is None else max(bound, res.bound)
        if res.status is Status.INFEASIBLE:
            status, assign, start = Status.INFEASIBLE, None, None
        elif (
            res.status.has_solution
            and res.objective is not None
            and (value is None or res.objective <= value)
        ):
            assign, start, status, name, value = res.assign, res.start, res.status, "cpsat", res.objective
            incumbents.append((time.monotonic() - started, res.objective))
    if (
        shop
        and status is Status.FEASIBLE
        and assign is not None
        and start is not None
        and value is not None
        and not (bound is not None and relative_gap(value, bound) <= OPTIMALITY_TOLERANCE)
    ):
        from gpuplan.backends.schedule_shop import shop_search

        found_shop = shop_search(
            sp,
            assign,
            start,
            also_from=rules_best,
            deadline=deadline - 0.02 * time_limit_s,
            target=(time_lb if bound is None else bound - placement) / sp.w_makespan,
            workers=workers,
            seed=seed,
        )
        stats.update(found_shop.stats)
        phases.append("shop search")
        reason += ", then a tabu search over GPU orders (disjunctive: one task per GPU at a time)"
        shop_value = objective(sp, found_shop.assign, found_shop.start)
        if shop_value < value:
            assign, start, name, value = found_shop.assign, found_shop.start, "shop", shop_value
            incumbents.append((time.monotonic() - started, shop_value))
    proven = (
        status is Status.FEASIBLE
        and assign is not None
        and start is not None
        and bound is not None
        and relative_gap(objective(sp, assign, start), bound) <= OPTIMALITY_TOLERANCE
    )
    if proven:
        status = Status.OPTIMAL
    if status.has_solution and assign is not None and start is not None:
        bad = violations(sp, assign, start)
        if bad:
            raise AssertionError(f"schedule solver produced an infeasible plan: {bad[:3]}")
    message = ""
    if not status.has_solution and status is not Status.INFEASIBLE:
        message = "no schedule placing every required task was found within the time limit"
    plan = decode_fleet(
        c,
        assign if status.has_solution else None,
        status,
        bound,
        solver=name,
        phases=phases,
        requested=solver,
        reason=reason,
        started=started,
        warm=warm,
        incumbents=incumbents,
        stats=stats,
        message=message,
        start=start,
    )
    verify(plan, problem)
    return plan


def _shares_fragment(sp: ScheduleProgram) -> bool:
    """Can a placement strand capacity: some GPU task takes part of a GPU, or some node has more
    than one GPU? (Else every placement of a one-GPU task is alike for the fragmentation score.)"""
    f = sp.fleet
    gpu_task = ~f.cpu_only
    per_node = np.bincount(f.gpu_node[~f.host], minlength=f.n_nodes)
    return bool((f.share[gpu_task] < 1.0).any() or (per_node > 1).any())


def _tries(
    sp: ScheduleProgram, rules: tuple[str, ...], serial: bool
) -> list[tuple[str, Callable[..., tuple[np.ndarray, np.ndarray]], str, str]]:
    """The heuristic schedules in the order they are tried: (scheme, run, label, rule). Per rule
    the event schedule by best fit, then by fragmentation (when placements can fragment); then the
    list schedules when `serial`."""
    frag = _shares_fragment(sp)
    out: list[tuple[str, Callable[..., tuple[np.ndarray, np.ndarray]], str, str]] = []
    for rule in rules:
        out.append(("event", event_schedule, "event schedule", rule))
        if frag:
            run = functools.partial(event_schedule, placement="frag")
            out.append(("event_frag", run, "event schedule, fragmentation-aware placement", rule))
    if serial:
        out.extend(("list", list_schedule, "list schedule", rule) for rule in rules)
    return out


def _late_plan(
    c: FleetCompiled, problem: Problem, sp: ScheduleProgram, chain: list[int], solver: str, started: float
) -> Plan:
    """The infeasible plan when releases, durations and precedences alone make a task that must be
    placed end after its deadline or the horizon; the message names the chain."""
    from gpuplan.program.verify import verify

    p_min = fastest(sp)
    h = heads(sp, p_min)
    ids = c.task_ids
    links = [f"{ids[t]} ({p_min[t]:g} h)" for t in chain]
    last = chain[-1]
    first = chain[0]
    message = (
        f"task {ids[last]!r} cannot end by {sp.deadline[last]:g} h (its deadline_h or the horizon):"
        f" {' -> '.join(links)}, from {ids[first]!r}'s release at {sp.release[first]:g} h at the fastest"
        f" GPUs, ends at {h[last] + p_min[last]:g} h"
    )
    plan = presolve_plan(
        c, solver, started, "releases, durations and precedences alone pass a deadline", message
    )
    verify(plan, problem)
    return plan


__all__ = ["SCHEDULE_EXACT_PAIRS", "SERIAL_S_PER_PAIR", "serial_fits", "solve_schedule"]

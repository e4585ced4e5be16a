"""The time-indexed makespan bound: never above the shortest makespan (brute force on tiny programs
with gangs, shares, memory, CPU and optional tasks), exact on small job shops, and used by the
scheduled CP-SAT solve to close a search early."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings

from gpuplan.backends.schedule_cpsat import solve_schedule_cpsat
from gpuplan.bounds.time_indexed import time_indexed_makespan
from gpuplan.program.schedule import ScheduleProgram, ends, makespan_bound, must_place, violations
from gpuplan.status import Status
from tests.oracles import schedule_brute_force
from tests.strategies import job_shop, makespan_only, on_first_cpsat_solve, scheduled_programs

INF = float("inf")


@settings(max_examples=40, deadline=None)
@given(scheduled_programs())
def test_bound_is_never_above_the_shortest_makespan(sp: ScheduleProgram) -> None:
    """Asked with a loose upper makespan (so it must find the relaxation's minimum), the bound is at
    most the brute-force shortest makespan of the tasks that must be placed."""
    sp = makespan_only(sp)
    ref = schedule_brute_force(sp)
    if ref is None:
        return
    _, assign, start = ref
    need = must_place(sp)
    if not need.any():
        assert time_indexed_makespan(sp, 10.0, time.monotonic() + 5).status == "nothing to bound"
        return
    shortest = float(ends(sp, assign, start)[need].max(initial=0.0))
    loose = float(sp.release.max() + np.nan_to_num(sp.duration_c, nan=0.0).max(axis=1).sum()) + 5
    res = time_indexed_makespan(sp, loose, time.monotonic() + 20)
    assert res.status == "feasible", res  # asked up to the first "yes"
    assert res.makespan is not None and res.makespan <= shortest + 1e-9, (res, shortest)


@pytest.mark.parametrize("seed", range(4))
def test_exact_on_small_job_shops(seed: int) -> None:
    """On a job shop the relaxation is the problem on its grid: every question below the optimum is
    answered "no" (the bound is the optimum), and asked past it, the first "yes" is at the optimum."""
    sp = job_shop(jobs=5, machines=3, ops=4, seed=seed, longest=6)
    ref = solve_schedule_cpsat(sp, time_limit=20, workers=1, seed=0)
    assert ref.status is Status.OPTIMAL and ref.objective is not None
    cheap = makespan_bound(sp)
    below = time_indexed_makespan(sp, ref.objective, time.monotonic() + 20)
    assert below.makespan == pytest.approx(ref.objective)
    assert below.status == ("infeasible" if cheap < ref.objective else "nothing to ask"), below
    above = time_indexed_makespan(sp, ref.objective + 4, time.monotonic() + 20)
    assert above.status == "feasible" and above.makespan == pytest.approx(ref.objective)
    assert above.questions == below.questions + 1


def test_does_not_run_off_grid_or_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durations of 1/3 h have no decimal grid: no bound. A question over `MAX_VARIABLES` is not
    asked: the bound is the cheap one, and the status says why."""
    from gpuplan.bounds import time_indexed

    sp = job_shop(jobs=2, machines=2, ops=2, seed=0, longest=6)
    thirds = sp.replace(duration_c=sp.duration_c / 3)
    assert time_indexed_makespan(thirds, 10.0, time.monotonic() + 5).status == "no time grid"
    monkeypatch.setattr(time_indexed, "MAX_VARIABLES", 10)
    big = job_shop(8, 3, 4, 0, longest=6)
    res = time_indexed_makespan(big, 1e6, time.monotonic() + 5)
    assert res.status.startswith("too large") and res.questions == 0, res
    assert res.makespan == pytest.approx(makespan_bound(big))


def test_first_schedule_proven_by_the_bound_ends_the_solve(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first part stopped at its first schedule leaves the time-indexed bound running beside the
    neighbourhood search; the solve ends proven optimal, and when the bound proves the first
    schedule no full search follows. (Which of the two proves first is a race; the stop itself is
    tested below.)"""
    on_first_cpsat_solve(monkeypatch, stop_after_first_solution=True)
    sp = job_shop(jobs=4, machines=3, ops=3, seed=1, longest=6)
    res = solve_schedule_cpsat(sp, time_limit=10.0, workers=1, seed=0)
    assert res.stats["cpsat_status"] == "FEASIBLE", res.stats
    assert "cpsat_ti_status" in res.stats, res.stats
    assert res.status is Status.OPTIMAL and violations(sp, res.assign, res.start) == []
    if res.stats["cpsat_ti_status"] == "infeasible":
        assert res.stats["cpsat_closed_by"] == "time-indexed bound", res.stats
        assert "cpsat_rest_status" not in res.stats


class FakeSearch:
    """Stands for a CP-SAT search that would run on: records the stop it is sent."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop_search(self) -> None:
        self.stopped.set()


def test_the_bound_stops_the_search_when_it_proves_the_first_schedule() -> None:
    """Given an optimal first schedule, the bound beside the search proves it and stops the search;
    given a worse one, it stops nothing and still gives the optimum as its bound."""
    from gpuplan.backends.schedule_cpsat import _Best, _TimeIndexedBeside

    sp = job_shop(jobs=5, machines=3, ops=4, seed=1, longest=6)  # SCIP takes some 0.2 s to prove it
    ref = solve_schedule_cpsat(sp, time_limit=20, workers=1, seed=0)
    assert ref.status is Status.OPTIMAL and ref.objective is not None
    search = FakeSearch()
    best = _Best(ref.objective, ref.objective)  # a job shop's objective is its makespan
    beside = _TimeIndexedBeside(sp, 0.0, best, time.monotonic() + 20)
    if not beside.searching(search):
        pytest.skip("the bound proved the schedule before the search began")
    assert beside.proved.wait(20) and search.stopped.is_set()
    assert not beside.searching(FakeSearch())  # a later search is not started
    stats: dict = {}
    assert beside.finish(stats) == pytest.approx(ref.objective)
    assert stats["cpsat_ti_status"] == "infeasible"

    search = FakeSearch()  # the best schedule found is 3 h longer than the optimum
    beside = _TimeIndexedBeside(sp, 0.0, _Best(ref.objective + 3, ref.objective + 3), time.monotonic() + 20)
    beside.searching(search)
    beside._thread.join(20)
    assert not beside.proved.is_set() and not search.stopped.is_set()
    assert beside.finish({}) == pytest.approx(ref.objective)


def test_not_asked_with_other_time_terms() -> None:
    """A completion-time objective is not a makespan: the bound is not asked."""
    sp = job_shop(jobs=4, machines=3, ops=3, seed=1, longest=6).replace(w_makespan=0.0, w_completion=1.0)
    res = solve_schedule_cpsat(sp, time_limit=3.0, workers=1, seed=0)
    assert "cpsat_ti_status" not in res.stats


def test_a_better_plan_found_beside_ends_the_questions() -> None:
    """Asked with a loose makespan, the questions go on to the first "yes"; when a plan as short as
    the optimum turns up beside (here: told after the first "no"), no question at or past it is
    asked, and every one asked was a "no"."""
    sp = job_shop(jobs=5, machines=3, ops=4, seed=5, longest=6)
    ref = solve_schedule_cpsat(sp, time_limit=20, workers=1, seed=0)
    assert ref.status is Status.OPTIMAL and ref.objective is not None
    assert makespan_bound(sp) < ref.objective - 1  # at least two questions below the optimum
    loose = time_indexed_makespan(sp, ref.objective + 4, time.monotonic() + 20)
    assert loose.status == "feasible"
    best = [ref.objective + 4]
    told: list[float] = []

    def raised(bound: float) -> None:
        told.append(bound)
        best[0] = ref.objective  # a search beside finds the optimum

    res = time_indexed_makespan(sp, lambda: best[0], time.monotonic() + 20, on_bound=raised)
    assert res.status == "infeasible" and res.makespan == pytest.approx(ref.objective), res
    assert res.questions == loose.questions - 1 and told[-1] == pytest.approx(ref.objective)


def test_paced_questions_stop_when_they_cannot_reach_the_best_plan() -> None:
    """Paced, and with a best plan so far above the optimum that the questions left could not all be
    asked by the deadline at any pace, the bound stops after its first "no" (the CPU goes back to
    the search); unpaced, it asks on to the first "yes". Both bounds are below the optimum."""
    sp = job_shop(jobs=5, machines=3, ops=4, seed=5, longest=6)
    ref = solve_schedule_cpsat(sp, time_limit=20, workers=1, seed=0)
    assert ref.status is Status.OPTIMAL and ref.objective is not None
    assert makespan_bound(sp) < ref.objective - 1  # at least two questions below the optimum
    far = ref.objective * 1e6
    paced = time_indexed_makespan(sp, far, time.monotonic() + 20, paced=True)
    assert paced.status.startswith("too slow") and paced.questions == 1, paced
    assert paced.makespan is not None and makespan_bound(sp) < paced.makespan < ref.objective
    unpaced = time_indexed_makespan(sp, ref.objective + 4, time.monotonic() + 20)
    assert unpaced.status == "feasible" and unpaced.questions > 1
    assert unpaced.makespan == pytest.approx(ref.objective)

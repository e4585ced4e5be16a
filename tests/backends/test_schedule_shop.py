"""The shop search (`backends/schedule_shop.py`, core `gpuplan.native._shop`): feasible, never worse
than its start and never below the brute-force optimum on tiny disjunctive programs; equal to brute
force inside `solve`; which programs it takes; deadlines, stops, bad input to the core, and plans
made without the core."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gpuplan import native, parse_problem, solve, verify
from gpuplan.backends.schedule_cpsat import solve_schedule_cpsat
from gpuplan.backends.schedule_shop import disjunctive_reason, shop_search, shop_view
from gpuplan.heuristics.list_schedule import best_of
from gpuplan.interrupt import watching
from gpuplan.models import Status
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.schedule import ScheduleProgram, makespan, schedule_program, violations
from tests.oracles import schedule_brute_force
from tests.strategies import job_shop

compiled = pytest.mark.skipif(not native.shop_available(), reason="the C extension _shop is not built here")
TYPES = [{"name": "A", "memory_gb": 80}, {"name": "B", "memory_gb": 40}]


@st.composite
def shop_problems(draw: st.DrawFn, max_tasks: int = 3) -> dict[str, Any]:
    """A tiny disjunctive problem: 1-3 GPUs of types A and B on 1-2 nodes, 2-`max_tasks` tasks with
    integer durations on a nonempty subset of the types, releases, a deadline sometimes, a few
    `after` links (earlier to later, so acyclic); minimise the makespan."""
    a = draw(st.integers(1, 2))
    b = draw(st.integers(0, 1))
    nodes = [{"id": "n0", "gpu_counts": {"A": a}}]
    if b:
        nodes.append({"id": "n1", "gpu_counts": {"B": b}})
    n_t = draw(st.integers(2, max_tasks))
    tasks = []
    for j in range(n_t):
        kinds = draw(st.sampled_from([["A"], ["A", "B"], ["A", "B"]] + ([["B"]] if b else [])))
        task: dict[str, Any] = {"id": f"t{j}", "duration_h": {k: draw(st.integers(1, 3)) for k in kinds}}
        task["release_h"] = draw(st.sampled_from([0, 0, 1, 2]))
        if draw(st.integers(0, 4)) == 0:
            task["deadline_h"] = draw(st.integers(4, 8))
        after = [f"t{i}" for i in range(j) if draw(st.integers(0, 3)) == 0]
        if after:
            task["after"] = after
        tasks.append(task)
    return {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks, "objective": {"kind": "makespan"}}


def program(problem: dict[str, Any]) -> ScheduleProgram:
    return schedule_program(compile_fleet(parse_problem(problem)))


@compiled
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop_problems(), st.integers(0, 3))
def test_search_is_feasible_no_worse_than_its_start_and_not_below_the_optimum(
    problem: dict[str, Any], seed: int
) -> None:
    sp = program(problem)
    reason = disjunctive_reason(sp)
    assume(reason != "some task has no usable GPU")  # a deadline before its release plus duration
    assert reason == ""
    assign, start = best_of(sp)
    assume(not violations(sp, assign, start))
    res = shop_search(sp, assign, start, deadline=time.monotonic() + 5, max_steps=300, seed=seed, workers=2)
    assert violations(sp, res.assign, res.start) == []
    assert res.makespan == pytest.approx(makespan(sp, res.assign, res.start))
    assert res.makespan <= makespan(sp, assign, start) + 1e-9
    ref = schedule_brute_force(sp)
    assert ref is not None
    assert res.makespan >= ref[0] - 1e-9


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop_problems())
def test_solve_of_a_disjunctive_problem_equals_brute_force(problem: dict[str, Any]) -> None:
    """The whole schedule strategy, shop search included: optimal, with the brute-force makespan."""
    ref = schedule_brute_force(program(problem))
    p = parse_problem(problem)
    plan = solve(p, time_limit_s=10, workers=1)
    verify(plan, p)
    if ref is None:
        assert plan.status.value == "infeasible"
        return
    assert plan.status.value == "optimal", plan.reason
    assert plan.objective == pytest.approx(ref[0], abs=1e-6)


@compiled
def test_search_improves_a_job_shop_and_keeps_its_rules() -> None:
    """An 8 x 4 flexible job shop: better than the best list schedule (76 h) within 400 steps."""
    sp = job_shop(jobs=8, machines=4, ops=4, seed=3)
    assign, start = best_of(sp)
    res = shop_search(sp, assign, start, deadline=time.monotonic() + 10, max_steps=400)
    assert violations(sp, res.assign, res.start) == []
    assert res.makespan < makespan(sp, assign, start)
    assert res.stats["shop_improvements"] >= 1


@compiled
def test_disjoint_copies_reach_one_copys_optimum() -> None:
    """Four disjoint copies of a 4 x 3 job shop: the search reaches one copy's optimum (proven by
    CP-SAT). Each copy shortened alone leaves the makespan as it was; before the critical-count
    tie-break (1b620df, then 200 steps to a restart) a restart threw that away and the search stayed
    at its list schedule (51 h) for 20,000 steps."""
    opt = solve_schedule_cpsat(job_shop(jobs=4, machines=3, ops=3, seed=0), time_limit=20, workers=2, seed=0)
    assert opt.status is Status.OPTIMAL and opt.objective is not None
    sp = job_shop(jobs=4, machines=3, ops=3, seed=0, copies=4)
    assign, start = best_of(sp)
    assert makespan(sp, assign, start) > opt.objective
    res = shop_search(sp, assign, start, deadline=time.monotonic() + 30, max_steps=20_000, seed=0)
    assert violations(sp, res.assign, res.start) == []
    assert res.makespan == pytest.approx(opt.objective)


@compiled
def test_a_deadline_is_never_passed_for_a_shorter_makespan() -> None:
    """Both tasks fit only on GPU A (B is slow); 'late' must end by 2 h, so it runs first although
    running 'long' first is what a deadline-blind list would try."""
    problem = {
        "gpu_types": TYPES,
        "nodes": [{"id": "n0", "gpu_counts": {"A": 1, "B": 1}}],
        "tasks": [
            {"id": "long", "duration_h": {"A": 3, "B": 9}},
            {"id": "late", "duration_h": {"A": 2, "B": 8}, "deadline_h": 2},
            {"id": "next", "duration_h": {"A": 1, "B": 1}, "after": ["long"]},
        ],
        "objective": {"kind": "makespan"},
    }
    sp = program(problem)
    assign, start = best_of(sp)
    assert not violations(sp, assign, start)
    res = shop_search(sp, assign, start, deadline=time.monotonic() + 5, max_steps=2_000)
    assert violations(sp, res.assign, res.start) == []
    late = 1
    assert res.start[late] == 0.0 and res.makespan == pytest.approx(6.0)


@compiled
@pytest.mark.clock
def test_a_stop_request_ends_the_search_with_its_best() -> None:
    sp = job_shop(jobs=10, machines=5, ops=5, seed=1)
    assign, start = best_of(sp)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with watching(stop):
        res = shop_search(sp, assign, start, deadline=time.monotonic() + 30, workers=2)
    assert time.monotonic() - began < 5
    assert violations(sp, res.assign, res.start) == []
    assert res.makespan <= makespan(sp, assign, start)


def _with(problem: dict[str, Any], **task: Any) -> dict[str, Any]:
    out = {**problem, "tasks": [dict(t) for t in problem["tasks"]]}
    out["tasks"][0].update(task)
    return out


BASE = {
    "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1.0}, {"name": "B", "memory_gb": 80}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 2, "B": 1}, "cpu_cores": 8}],
    "tasks": [
        {"id": "a", "duration_h": {"A": 2}, "cpu_cores": 2},
        {"id": "b", "duration_h": {"A": 1}, "after": ["a"], "cpu_cores": 2},
    ],
    "objective": {"kind": "makespan"},
}


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        (BASE, ""),
        ({**BASE, "objective": {"kind": "completion_time"}}, "time terms other than the makespan"),
        (_with(BASE, gpus=2), "several GPUs"),
        (_with(BASE, gpu_share=0.5), "half a GPU or less"),
        (_with(BASE, optional=True), "optional"),
        (_with(BASE, anti_affinity="s"), "spread group"),
        (
            {
                **_with(BASE, duration_h={"A": 2, "B": 1}),
                "objective": {"kind": "weighted", "terms": [{"kind": "cost"}, {"kind": "makespan"}]},
            },
            "cost differs",
        ),
        (_with(BASE, cpu_cores=7), "node CPU or host memory may bind"),
    ],
)
def test_which_programs_are_disjunctive(problem: dict[str, Any], reason: str) -> None:
    got = disjunctive_reason(program(problem))
    assert (got == "") if not reason else (reason in got), got


def test_the_view_lists_each_tasks_gpus_and_links() -> None:
    """Task 'a' runs on either A GPU (2 h), 'b' after it; GPU B is no one's."""
    view = shop_view(program(BASE))
    assert view.aptr.tolist() == [0, 2, 4]
    assert sorted(view.amach[:2].tolist()) == sorted(view.amach[2:].tolist())
    assert view.adur.tolist() == [2.0, 2.0, 1.0, 1.0]
    assert view.pptr.tolist() == [0, 0, 1] and view.plist.tolist() == [0]
    assert view.sptr.tolist() == [0, 1, 1] and view.slist.tolist() == [1]


@compiled
def test_the_core_refuses_a_start_that_is_not_a_schedule() -> None:
    sp = program(BASE)
    assign, _ = best_of(sp)
    core = native.shop_core()
    view = shop_view(sp)
    n = sp.n_tasks
    out = (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64))

    def run(mach0: np.ndarray, order0: np.ndarray) -> Any:
        return core.search(
            n, view.n_gpus, view.aptr, view.amach, view.adur, view.pptr, view.plist, view.sptr, view.slist,
            view.release, view.deadline, mach0, order0, *out, 1.0, 10, 0.0, 0, 100, 6, 5, 1,
        )  # fmt: skip

    mach = np.ascontiguousarray(assign[:, 0])
    with pytest.raises(ValueError, match="not a permutation"):
        run(mach, np.array([0, 0], dtype=np.int64))
    with pytest.raises(ValueError, match="may not use"):
        run(np.array([2, mach[1]], dtype=np.int64), np.array([0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="cycle"):  # b before a on one GPU: b waits for a, a for b
        run(np.array([mach[0], mach[0]], dtype=np.int64), np.array([1, 0], dtype=np.int64))


def job_shop_problem(jobs: int, machines: int, ops: int, seed: int) -> dict[str, Any]:
    """`tests.strategies.job_shop` as a problem: each job a chain of `ops` tasks, each on 2 of the
    `machines` GPUs (one per type) for 1-20 h; minimise the makespan."""
    rng = np.random.default_rng(seed)
    types = [{"name": f"M{m}", "memory_gb": 80} for m in range(machines)]
    nodes = [{"id": f"n{m}", "gpus": [{"id": f"g{m}", "type": f"M{m}"}]} for m in range(machines)]
    tasks: list[dict[str, Any]] = []
    for j in range(jobs):
        for o in range(ops):
            alts = rng.choice(machines, size=2, replace=False)
            task: dict[str, Any] = {
                "id": f"j{j}o{o}",
                "duration_h": {f"M{m}": float(rng.integers(1, 21)) for m in alts},
            }
            if o:
                task["after"] = [f"j{j}o{o - 1}"]
            tasks.append(task)
    return {"gpu_types": types, "nodes": nodes, "tasks": tasks, "objective": {"kind": "makespan"}}


@compiled
@pytest.mark.clock
def test_solve_runs_the_shop_search_on_a_job_shop() -> None:
    """A 10 x 5 job shop CP-SAT does not prove within its part of 4 s: the shop search follows it."""
    p = parse_problem(job_shop_problem(10, 5, 5, seed=1))
    plan = solve(p, time_limit_s=4, workers=1)
    verify(plan, p)
    assert plan.phases[-1] == "shop search"
    assert plan.stats["shop_runs"] == 1 and plan.stats["shop_steps"] > 0


def test_a_plan_without_the_core_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the install had no C compiler: the job shop is still planned and verified, and the
    plan's stats say the shop search did not run."""
    monkeypatch.setattr(native, "_shop", None)
    p = parse_problem(job_shop_problem(6, 4, 4, seed=3))
    plan = solve(p, time_limit_s=4, workers=1)
    verify(plan, p)
    assert plan.status.value in ("optimal", "feasible")
    assert plan.stats["shop"] == "unavailable (C extension not built)"
    assert "shop search" not in plan.phases


@compiled
def test_every_second_run_starts_from_the_other_schedule() -> None:
    """With `also_from` a better schedule than the one given, two runs of one step each return at
    most its makespan: the second run started there."""
    sp = job_shop(jobs=8, machines=4, ops=4, seed=3)
    assign, start = best_of(sp)
    better = shop_search(sp, assign, start, deadline=time.monotonic() + 10, max_steps=400)
    assert better.makespan < makespan(sp, assign, start)
    one = shop_search(sp, assign, start, deadline=time.monotonic() + 10, max_steps=1, workers=1)
    assert one.makespan > better.makespan  # one step from the list schedule does not get there
    res = shop_search(
        sp,
        assign,
        start,
        deadline=time.monotonic() + 10,
        max_steps=1,
        workers=2,
        also_from=(better.assign, better.start),
    )
    assert res.makespan <= better.makespan
    assert violations(sp, res.assign, res.start) == []

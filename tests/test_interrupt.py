"""The caller's stop request (`gpuplan.interrupt`) and `solve(..., stop=...)`."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gpuplan import parse_problem, solve, verify
from gpuplan.interrupt import in_context, kill_children, owned, past, requested, run_stoppable, watching
from gpuplan.models import Plan


def hard_gap(n_tasks: int = 800, seed: int = 1) -> dict:
    """A tight random GAP (matrix form) that auto does not prove optimal within a minute."""
    rng = np.random.default_rng(seed)
    n_gpus = n_tasks // 10
    load = rng.integers(5, 26, size=(n_tasks, n_gpus))
    cost = rng.integers(10, 51, size=(n_tasks, n_gpus))
    cap = (0.8 * load.sum(axis=0) / n_gpus).astype(int)
    return {"matrix": {"cost": cost.tolist(), "load": load.tolist(), "capacity": cap.tolist()}}


def test_requested_follows_the_stop_of_the_block() -> None:
    """Outside `watching` nothing is requested; inside, the event (or callable) decides."""
    ev = threading.Event()
    assert not requested()
    with watching(ev):
        assert not requested() and not past(time.monotonic() + 60)
        ev.set()
        assert requested() and past(time.monotonic() + 60)
    assert not requested()
    with watching(lambda: True):
        assert requested()


def test_threads_see_the_stop_only_when_bound() -> None:
    """A thread started with `in_context` sees the caller's stop; a bare one does not."""
    seen: dict[str, bool] = {}
    with watching(lambda: True):
        bound = threading.Thread(target=in_context(lambda: seen.update(bound=requested())))
        bare = threading.Thread(target=lambda: seen.update(bare=requested()))
        bound.start(), bare.start()
        bound.join(), bare.join()
    assert seen == {"bound": True, "bare": False}


def test_run_stoppable_calls_the_stop_function() -> None:
    """A blocking call returns once the watcher calls its stop function after the event is set."""
    ev, released = threading.Event(), threading.Event()
    threading.Timer(0.2, ev.set).start()
    with watching(ev):
        t0 = time.monotonic()
        got = run_stoppable(lambda: released.wait(30), released.set)
    assert got is True and time.monotonic() - t0 < 10


def test_kill_children_kills_only_owned_ones() -> None:
    """`kill_children` reaches a child while it is owned, and not after."""
    killed: list[str] = []

    class Child:
        def __init__(self, name: str) -> None:
            self.name = name

        def kill(self) -> None:
            killed.append(self.name)

    with owned(Child("a")):
        kill_children()
    kill_children()
    assert killed == ["a"]


@pytest.mark.clock
def stopped_after(problem: dict, seconds: float) -> tuple[Plan, float]:
    """A minute's solve of `problem` with a stop set after `seconds`: the plan and the wall time."""
    ev = threading.Event()
    timer = threading.Timer(seconds, ev.set)
    timer.start()
    t0 = time.monotonic()
    try:
        plan = solve(problem, time_limit_s=60, workers=2, stop=ev)
    finally:
        timer.cancel()
    return plan, time.monotonic() - t0


def test_solve_returns_a_verified_plan_soon_after_the_stop() -> None:
    """A minute's solve stopped after 1 s returns within a few seconds, verified, marked interrupted."""
    problem = hard_gap()
    plan, elapsed = stopped_after(problem, 1.0)
    assert elapsed < 15, elapsed
    assert plan.status.has_solution
    assert plan.stats["interrupted"] is True and "interrupted" in plan.message
    verify(plan, parse_problem(problem))


def test_a_stop_set_before_the_solve_still_gives_the_warm_start() -> None:
    """Stopped from the start (a callable), the fleet search still returns its first greedy plan."""
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 2.0}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 4}, "cpu_cores": 8}],
        "tasks": [{"id": f"t{i}", "gpu_share": 0.5, "cpu_cores": 1, "work_h": 1.0 + i} for i in range(6)],
    }
    plan = solve(problem, time_limit_s=60, stop=lambda: True)
    assert plan.status.has_solution and plan.stats["interrupted"] is True
    verify(plan, parse_problem(problem))


@pytest.mark.clock
def test_the_c_branch_and_bound_stops_on_request() -> None:
    """A search given a minute on a program it cannot finish ends soon after the stop, marked as cut
    short (the stop reaches the C core, which no Python check interrupts)."""
    from gpuplan import native
    from gpuplan.backends.gap_bb import branch_and_bound
    from tests.strategies import knapsack_from, program_of, type_d_matrix

    if not native.available():
        pytest.skip(native.UNAVAILABLE)
    p = program_of(type_d_matrix(200, 10, seed=3, max_load=25))
    kl = knapsack_from(p)
    target = int(np.abs(p.cost_int).sum()) + 1  # loose: the search would go on for the whole minute
    ev = threading.Event()
    threading.Timer(0.5, ev.set).start()
    t0 = time.monotonic()
    with watching(ev):
        r = branch_and_bound(p, kl, target, time_limit=60.0)
    assert time.monotonic() - t0 < 10
    assert r.limited and not r.exhausted


def test_the_schedule_neighbourhood_search_stops_on_request() -> None:
    """A scheduled batch past the exact model, stopped 3 s into a minute's solve (the rules take
    about 2 s): the neighbourhood search returns its best so far, verified and marked interrupted."""
    rng = np.random.default_rng(0)
    nodes = [{"id": f"n{i}", "gpu_counts": {"A": 4}} for i in range(16)]
    tasks = [
        {"id": f"t{i}", "gpus": int(rng.choice([1, 1, 2])), "work_h": float(rng.uniform(0.5, 4)),
         "release_h": float(rng.uniform(0, 6))}
        for i in range(200)
    ]  # fmt: skip
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 80}],
        "nodes": nodes,
        "tasks": tasks,
        "objective": {"kind": "completion_time"},
    }
    plan, elapsed = stopped_after(problem, 3.0)
    assert elapsed < 15, elapsed
    assert plan.phases[-1] == "neighbourhood search" and plan.stats["interrupted"] is True
    verify(plan, parse_problem(problem))

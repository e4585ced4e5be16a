"""The neighbourhood search over schedules: a neighbourhood holds the current schedule and every
schedule it accepts keeps the whole program's rules; the search finds the start a greedy schedule
misses, never makes a plan worse or invalid, and the strategy runs it past the exact model only."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gpuplan.backends.schedule_lns import _neighbourhood, schedule_lns
from gpuplan.heuristics.event_schedule import best_event_schedule, event_schedule
from gpuplan.program.neighbourhood import from_sub, sub_schedule, to_sub
from gpuplan.program.schedule import ScheduleProgram, ends, fastest, heads, objective, violations
from tests.strategies import random_schedule, schedule_of, scheduled_programs

INF = float("inf")
TYPES = [{"name": "A", "memory_gb": 80, "cost_per_hour": 1.0}]


def _hood(sp: ScheduleProgram, assign: np.ndarray, start: np.ndarray, seed: int, size: int) -> tuple:
    end = ends(sp, assign, start)
    node_of = np.where(assign[:, 0] >= 0, sp.fleet.gpu_node[np.maximum(assign[:, 0], 0)], -1)
    rng = np.random.default_rng(seed)
    hood = _neighbourhood(sp, rng, assign, start, end, heads(sp, fastest(sp)), node_of, size)
    return end, hood


@settings(max_examples=60, deadline=None)
@given(scheduled_programs(max_tasks=5, max_gpus=4), st.integers(0, 2**16), st.integers(1, 5), st.data())
def test_a_neighbourhood_holds_the_schedule_and_keeps_every_rule(
    sp: ScheduleProgram, seed: int, size: int, data: st.DataObject
) -> None:
    """The current schedule is one of the neighbourhood's; any schedule of its free tasks that the
    neighbourhood's program accepts (GPUs and starts drawn at random) breaks no rule of the whole
    program."""
    assign, start = event_schedule(sp, "wspt")
    assume(not violations(sp, assign, start))
    end, hood = _hood(sp, assign, start, seed, size)
    assume(hood is not None)
    free, pinned, nodes, window = hood
    if data.draw(st.booleans()):  # any free set: more precedences cross the neighbourhood's edge
        node_of = sp.fleet.gpu_node[np.maximum(assign[:, 0], 0)]
        on = np.flatnonzero((assign[:, 0] >= 0) & np.isin(node_of, nodes))
        free = np.array(sorted(data.draw(st.sets(st.sampled_from(on.tolist()), min_size=1))))
        window = (float(start[free].min()), float(end[free].max()) + data.draw(st.sampled_from([0, 1])))
        rest = np.setdiff1d(on, free)
        pinned = rest[(start[rest] < window[1]) & (end[rest] > window[0])]
    sub, gpus = sub_schedule(sp, assign, start, end, free, pinned, nodes, window)
    tasks = np.concatenate([free, pinned])
    sub_assign = to_sub(gpus, sp.fleet.n_gpus, assign[tasks])
    sub_start = start[tasks]
    assert violations(sub, sub_assign, sub_start) == []
    top = int(np.ceil(window[1])) + 2
    for _ in range(40):
        a2, s2 = sub_assign.copy(), sub_start.copy()
        for j in range(free.size):
            if sub.fleet.gang[j] == 1 and data.draw(st.booleans()):
                a2[j, 0] = data.draw(st.integers(0, gpus.size - 1))
            s2[j] = data.draw(st.integers(0, top))
        if violations(sub, a2, s2):
            continue
        full_assign, full_start = assign.copy(), start.copy()
        full_assign[free] = from_sub(gpus, a2[: free.size])
        full_start[free] = s2[: free.size]
        assert violations(sp, full_assign, full_start) == [], (free, pinned, a2, s2)


def test_a_free_task_keeps_its_precedences_with_the_tasks_outside() -> None:
    """Chain x -> y -> z on two nodes, y alone free: y may start once x has ended and must end by
    z's start; x and z are outside (another node) or pinned, and carry no release or weight."""
    nodes = [{"id": "m", "gpu_counts": {"A": 1}}, {"id": "n", "gpu_counts": {"A": 1}}]
    tasks = [{"id": i, "duration_h": {"A": d}} for i, d in (("x", 2), ("y", 1), ("z", 3))]
    prob = {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}
    sp = schedule_of(prob, [0, 0, 0], [INF] * 3, [INF] * 3, [1, 1, 1], [(0, 1), (1, 2)], w=(0, 1, 0))
    assign = np.array([[1], [0], [0]])  # x on n; y, z on m
    start = np.array([0.0, 2.5, 4.0])
    end = ends(sp, assign, start)
    sub, gpus = sub_schedule(sp, assign, start, end, np.array([1]), np.array([2]), np.array([0]), (2.5, 3.6))
    assert gpus.tolist() == [0]
    assert sub.release.tolist() == [2.5, 0.0]  # max(0, a = 2.5, x ends at 2)
    assert sub.deadline.tolist() == [3.6, INF]  # min(window end, z starts at 4)
    sub, _ = sub_schedule(sp, assign, start, end, np.array([1]), np.array([2]), np.array([0]), (1.0, 9.0))
    assert sub.release.tolist() == [2.0, 0.0] and sub.deadline.tolist() == [4.0, INF]
    assert sub.weight.tolist() == [1.0, 0.0] and sub.pred.size == 0


def test_the_search_lets_a_short_task_go_first() -> None:
    """One GPU: `long` (10 h) is released at 0, `short` (1 h) at 0.1 h. Any greedy schedule starts
    `long` at once (sum of ends 21); the search frees both and finds short, then long (12.2)."""
    tasks = [{"id": "long", "duration_h": {"A": 10}}, {"id": "short", "duration_h": {"A": 1}}]
    prob = {"gpu_types": TYPES, "nodes": [{"id": "n", "gpu_counts": {"A": 1}}], "tasks": tasks}
    sp = schedule_of(prob, [0, 0.1], [INF, INF], [INF, INF], [1, 1], [], w=(0, 1, 0))
    assign, start = event_schedule(sp, "wspt")
    base = sp.fleet.objective(assign)
    assert objective(sp, assign, start) == pytest.approx(base + 21.0)
    res = schedule_lns(sp, assign, start, deadline=time.monotonic() + 10, bound=base + 12.2, seed=0)
    assert res.objective == pytest.approx(base + 12.2)
    assert res.start.tolist() == pytest.approx([1.1, 0.1])
    assert violations(sp, res.assign, res.start) == []


@pytest.mark.parametrize("seed", [1, 2])
def test_the_search_never_breaks_a_rule_or_makes_the_plan_worse(seed: int) -> None:
    """Random fleets with gangs, shares, memory, CPU, host memory, spread groups, chains and
    deadlines: after the search, the same tasks are placed, no rule is broken that the start did
    not break (a required task it left out), and the objective is no higher."""
    sp = random_schedule(120, 6, seed=seed, deadlines=True)
    assign, start = best_event_schedule(sp)
    before = set(violations(sp, assign, start))
    assert all(v.startswith("required task") for v in before)
    res = schedule_lns(sp, assign, start, deadline=time.monotonic() + 4, seed=seed)
    assert set(violations(sp, res.assign, res.start)) == before
    assert ((res.assign[:, 0] >= 0) == (assign[:, 0] >= 0)).all()
    assert res.objective <= objective(sp, assign, start) + 1e-9
    assert res.objective == pytest.approx(objective(sp, res.assign, res.start))
    assert res.stats["lns_rounds"] > 0 and res.stats["lns_rejected"] == 0


def test_auto_searches_neighbourhoods_past_the_exact_model_and_greedy_does_not(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past `SCHEDULE_EXACT_PAIRS` auto gives the time after the rules to the neighbourhood search
    (and the plan is verified, as every plan), up to `LNS_MAX_PAIRS`; 'greedy' stops after the rules."""
    from gpuplan import api
    from gpuplan.strategy import schedule as strategy

    monkeypatch.setattr(strategy, "SCHEDULE_EXACT_PAIRS", 1)
    tasks = [
        {"id": "long", "duration_h": {"A": 10}},
        {"id": "short", "duration_h": {"A": 1}, "release_h": 0.1},
    ]
    prob = {
        "gpu_types": TYPES,
        "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
        "tasks": tasks,
        "objective": {"kind": "completion_time"},
    }
    plan = api.solve(prob, time_limit_s=3, workers=1)
    assert plan.phases[-1] == "neighbourhood search" and plan.stats["lns_rounds"] > 0
    assert plan.objective == pytest.approx(12.2)  # (the serial list schedule finds it too)
    greedy = api.solve(prob, solver="greedy", time_limit_s=3, workers=1)
    assert "neighbourhood search" not in greedy.phases and "lns_rounds" not in greedy.stats
    monkeypatch.setattr(strategy, "LNS_MAX_PAIRS", 1)  # past it, the rules keep the whole limit
    large = api.solve(prob, time_limit_s=3, workers=1)
    assert "neighbourhood search" not in large.phases and "lns_rounds" not in large.stats


def test_short_rounds_still_run(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Bug: a round limit of 0.05 s or less ended the search before its first neighbourhood (the
    guard compared the round's end, not the deadline, with 0.05 s)."""
    from gpuplan.backends import schedule_lns as lns

    monkeypatch.setattr(lns, "ROUND_S", 0.04)
    tasks = [{"id": "long", "duration_h": {"A": 10}}, {"id": "short", "duration_h": {"A": 1}}]
    prob = {"gpu_types": TYPES, "nodes": [{"id": "n", "gpu_counts": {"A": 1}}], "tasks": tasks}
    sp = schedule_of(prob, [0, 0.1], [INF, INF], [INF, INF], [1, 1], [], w=(0, 1, 0))
    assign, start = event_schedule(sp, "wspt")
    res = schedule_lns(sp, assign, start, deadline=time.monotonic() + 1.0, seed=0)
    assert res.stats["lns_rounds"] > 0

"""The parallel (event-driven) schedule: every plan breaks no rule (a required task it could not
place aside), it is never better than the brute-force optimum, a gang waits for a whole node, it
keeps precedences and releases, leaves out what cannot meet its deadline, stops at its deadline;
and the schedule strategy runs it alone on programs too large for the serial scheme."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings

from gpuplan.heuristics.event_schedule import PLACEMENTS, best_event_schedule, event_schedule
from gpuplan.heuristics.list_schedule import RULES
from gpuplan.program.schedule import ScheduleProgram, ends, objective, violations
from tests.oracles import schedule_brute_force
from tests.strategies import random_schedule, schedule_of, scheduled_programs

INF = float("inf")
TYPES = [
    {"name": "A", "memory_gb": 80, "cost_per_hour": 2.0, "speed": 2},
    {"name": "B", "memory_gb": 40, "cost_per_hour": 1.0},
]


def only_required_left_out(found: list[str]) -> bool:
    return all(v.startswith("required task") and v.endswith("dropped") for v in found)


def problem(tasks: list[dict], nodes: list[dict]) -> dict:
    return {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}


@settings(max_examples=25, deadline=None)
@given(scheduled_programs())
def test_every_rule_gives_a_valid_plan_no_better_than_the_optimum(sp: ScheduleProgram) -> None:
    ref = schedule_brute_force(sp)
    for rule in RULES:
        for placement in PLACEMENTS:
            assign, start = event_schedule(sp, rule, placement=placement)
            found = violations(sp, assign, start)
            assert only_required_left_out(found), (rule, placement, found)
            if not np.isfinite(sp.deadline).any():
                assert found == [] or ref is None, (rule, placement, found)
            if ref is not None and not found:
                assert objective(sp, assign, start) >= ref[0] - 1e-9 * max(1.0, abs(ref[0]))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", [1, 4])
def test_random_fleet_without_deadlines_places_everything_validly(rule: str, seed: int) -> None:
    sp = random_schedule(300, 12, seed=seed, deadlines=False)
    assign, start = event_schedule(sp, rule)
    assert violations(sp, assign, start) == []
    assert (assign[~sp.fleet.optional, 0] >= 0).all()


@pytest.mark.parametrize("seed", [2, 3])
def test_random_fleet_with_deadlines_breaks_no_rule_but_leaving_out(seed: int) -> None:
    sp = random_schedule(300, 12, seed=seed, deadlines=True)
    assign, start = best_event_schedule(sp)
    assert only_required_left_out(violations(sp, assign, start))
    placed = assign[:, 0] >= 0
    assert placed.sum() > 0.5 * sp.n_tasks
    ok = placed & np.isfinite(sp.deadline)
    assert (ends(sp, assign, start)[ok] <= sp.deadline[ok] + 1e-9).all()


def test_a_gang_waits_for_a_whole_node() -> None:
    """x takes one GPU of node m until 2 h, the gang n1 all of node n until 3 h: the gang g of 2
    waits until 2 and starts on m's two GPUs, never on one free GPU of each node."""
    nodes = [{"id": "m", "gpu_counts": {"A": 2}}, {"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [
        {"id": "x", "duration_h": {"A": 2, "B": 2}},
        {"id": "n1", "gpus": 2, "duration_h": {"A": 3, "B": 3}},
        {"id": "g", "gpus": 2, "duration_h": {"A": 1, "B": 1}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0, 0, 0], [INF] * 3, [INF] * 3, [1, 1, 1], [])
    assign, start = event_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert start.tolist() == [0.0, 0.0, 2.0]
    f = sp.fleet
    assert set(f.gpu_node[assign[1]].tolist()) == {1}  # n1 took node n whole
    assert set(f.gpu_node[assign[2]].tolist()) == {0}  # the gang waited for m, on both its GPUs
    assert sorted(assign[2].tolist()) == [0, 1]


def test_no_head_of_line_blocking() -> None:
    """A gang of 2 that does not fit waits; the single task after it in FIFO order starts at once
    on the free GPU."""
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [
        {"id": "x", "duration_h": {"A": 2, "B": 2}},
        {"id": "g", "gpus": 2, "duration_h": {"A": 1, "B": 1}},
        {"id": "y", "duration_h": {"A": 1, "B": 1}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0, 0, 0], [INF] * 3, [INF] * 3, [1, 1, 1], [])
    assign, start = event_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert start.tolist() == [0.0, 2.0, 0.0]


def test_best_fit_takes_the_fullest_gpu() -> None:
    """Two half-GPU tasks and a third: the third goes on the GPU already half used by the first
    (best fit), so the other GPU stays whole."""
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [{"id": f"t{i}", "gpu_share": 0.5, "duration_h": {"A": 5, "B": 5}} for i in range(2)]
    sp = schedule_of(problem(tasks, nodes), [0, 1], [INF] * 2, [INF] * 2, [1, 1], [])
    assign, start = event_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert assign[0, 0] == assign[1, 0] and start.tolist() == [0.0, 1.0]


def test_precedences_and_releases() -> None:
    """b after a (a ends at 2), c released at 3: b starts at 2 and c at 3, on a free GPU."""
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [{"id": i, "duration_h": {"A": d, "B": d}} for i, d in (("a", 2), ("b", 1), ("c", 1))]
    sp = schedule_of(problem(tasks, nodes), [0, 0, 3], [INF] * 3, [INF] * 3, [1, 1, 1], [(0, 1)])
    for rule in RULES:
        assign, start = event_schedule(sp, rule)
        assert violations(sp, assign, start) == []
        assert start.tolist() == [0.0, 2.0, 3.0], rule


def test_optional_task_past_its_deadline_is_left_out_with_its_successor() -> None:
    """One GPU, c (required) first in FIFO order runs [0, 2): a (deadline 2) cannot end by it and
    is left out, and b with it (its predecessor); the other optional task d is placed after c."""
    nodes = [{"id": "n", "gpu_counts": {"A": 1}}]
    tasks = [
        {"id": "c", "duration_h": {"A": 2, "B": 2}},
        {"id": "a", "duration_h": {"A": 1, "B": 1}, "optional": True},
        {"id": "b", "duration_h": {"A": 1, "B": 1}, "optional": True},
        {"id": "d", "duration_h": {"A": 1, "B": 1}, "optional": True},
    ]
    sp = schedule_of(
        problem(tasks, nodes), [0, 0, 0, 0], [INF, 2, INF, INF], [INF] * 4, [1] * 4, [(1, 2)], (0, 1, 0)
    )
    sp = sp.replace(fleet=sp.fleet.replace(penalty=np.full(4, 100.0)))  # worth placing when it can
    assign, start = event_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert (assign[1:3, 0] < 0).all() and np.isnan(start[1:3]).all()
    assert start[0] == 0.0 and start[3] == 2.0


def test_past_its_deadline_the_event_schedule_leaves_the_rest_out() -> None:
    """A deadline already passed stops the schedule at its first clock check (after 63 tries): the
    plan is partial and `violations` names the required tasks left out (no timing involved)."""
    n = 200
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 4}}],
        "tasks": [{"id": f"t{i}", "work_h": 1} for i in range(n)],
    }
    sp = schedule_of(data, [float(i) for i in range(n)], [INF] * n, [INF] * n, [1.0] * n, [], (1, 0, 0))
    assign, start = event_schedule(sp, "spt", deadline=time.monotonic() - 1.0)
    assert int((assign[:, 0] >= 0).sum()) == 63
    assert any("required task" in v for v in violations(sp, assign, start))
    full, start = event_schedule(sp, "spt")
    assert int((full[:, 0] >= 0).sum()) == n and start.tolist() == [float(i) for i in range(n)]


def test_the_strategy_runs_the_event_scheme_alone_on_a_large_program() -> None:
    """By the size rule alone (`serial_fits`, no clock): a program of 1,000 tasks on 1,000 GPUs
    (1,000,000 eligible pairs) at a 1 s limit gets event schedules only; a small one gets both."""
    import gpuplan
    from gpuplan.strategy.schedule import serial_fits

    assert serial_fits(10_000, 1.0) and not serial_fits(1_000_000, 1.0)
    assert serial_fits(1_000_000, 60.0) and not serial_fits(200_000_000, 60.0)
    n_nodes, n_tasks = 125, 1000
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"A": 8}} for i in range(n_nodes)],
        "tasks": [{"id": f"t{i}", "work_h": 1 + i % 3, "release_h": i / 100} for i in range(n_tasks)],
        "objective": {"kind": "completion_time"},
    }
    plan = gpuplan.solve(data, solver="greedy", time_limit_s=1.0)
    assert plan.stats["schedule_pairs"] == n_nodes * 8 * n_tasks
    assert plan.stats["schedule_serial"] is False
    assert plan.phases[0].startswith("event schedule")
    assert not any(k.startswith("list_") for k in plan.stats)
    small = gpuplan.solve({**data, "tasks": data["tasks"][:5]}, solver="greedy", time_limit_s=5.0)
    assert small.stats["schedule_serial"] is True
    assert any(k.startswith("list_") for k in small.stats)

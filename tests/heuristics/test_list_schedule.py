"""The serial list schedule: every plan it returns breaks no rule (a required task it could not place
aside, which only deadlines can cause), it is never better than the brute-force optimum, it
backfills gaps and starts gangs together; on a few hundred random tasks too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from gpuplan.heuristics.list_schedule import RULES, best_of, list_schedule
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


@settings(max_examples=25, deadline=None)
@given(scheduled_programs())
def test_every_rule_gives_a_valid_plan_no_better_than_the_optimum(sp: ScheduleProgram) -> None:
    ref = schedule_brute_force(sp)
    for rule in RULES:
        assign, start = list_schedule(sp, rule)
        found = violations(sp, assign, start)
        assert only_required_left_out(found), (rule, found)
        if not np.isfinite(sp.deadline).any():
            assert found == [] or ref is None, (rule, found)
        if ref is not None and not found:
            assert objective(sp, assign, start) >= ref[0] - 1e-9 * max(1.0, abs(ref[0]))


@settings(max_examples=10, deadline=None)
@given(scheduled_programs())
def test_best_of_is_the_best_rule(sp: ScheduleProgram) -> None:
    assign, start = best_of(sp)
    key = (len(violations(sp, assign, start)), objective(sp, assign, start))
    for rule in RULES:
        a, s = list_schedule(sp, rule)
        assert key <= (len(violations(sp, a, s)), objective(sp, a, s))


def problem(tasks: list[dict], nodes: list[dict]) -> dict:
    return {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}


def test_a_short_task_backfills_the_gap_before_a_reservation() -> None:
    """On one GPU: a [0, 1), then c (after a, released at 2) [2, 4); b (1 h, released at 0, taken
    last by the critical-path rule) fills the gap [1, 2) rather than wait until 4."""
    tasks = [{"id": i, "duration_h": {"A": d, "B": d}} for i, d in (("a", 1), ("c", 2), ("b", 1))]
    sp = schedule_of(
        problem(tasks, [{"id": "n", "gpu_counts": {"A": 1}}]),
        [0, 2, 0],
        [INF] * 3,
        [INF] * 3,
        [1, 1, 1],
        [(0, 1)],
    )
    assign, start = list_schedule(sp, "cp")  # a and c (the chain) go first
    assert violations(sp, assign, start) == []
    assert start.tolist() == [0.0, 2.0, 1.0]


def test_gang_starts_together_when_its_node_frees_up() -> None:
    """One GPU of the node is busy until 2 h: the gang of 2 waits for it rather than split."""
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [
        {"id": "x", "duration_h": {"A": 2, "B": 2}},
        {"id": "g", "gpus": 2, "duration_h": {"A": 1, "B": 1}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0, 0], [INF] * 2, [INF] * 2, [1, 1], [])
    assign, start = list_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert start.tolist() == [0.0, 2.0]
    assert sorted(assign[1].tolist()) == [0, 1]


def test_earliest_end_beats_earliest_start() -> None:
    """A free slow GPU (B, 4 h) and a fast one busy for 1 h (A, 2 h): the task waits for A."""
    nodes = [{"id": "n", "gpu_counts": {"A": 1, "B": 1}}]
    tasks = [
        {"id": "x", "duration_h": {"A": 1, "B": 9}, "allowed_types": ["A"]},
        {"id": "y", "duration_h": {"A": 2, "B": 4}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0, 0], [INF] * 2, [INF] * 2, [1, 1], [])
    assign, start = list_schedule(sp, "fifo")
    assert violations(sp, assign, start) == []
    assert ends(sp, assign, start).tolist() == [1.0, 3.0]


def test_optional_task_past_its_deadline_is_left_out_with_its_successor() -> None:
    nodes = [{"id": "n", "gpu_counts": {"A": 1}}]
    tasks = [
        {"id": "a", "duration_h": {"A": 3, "B": 3}, "optional": True},
        {"id": "b", "duration_h": {"A": 1, "B": 1}, "optional": True},
        {"id": "c", "duration_h": {"A": 1, "B": 1}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0, 0, 0], [2, INF, INF], [INF] * 3, [1, 1, 1], [(0, 1)])
    assign, start = list_schedule(sp, "cp")
    assert violations(sp, assign, start) == []
    assert (assign[:2, 0] < 0).all() and np.isnan(start[:2]).all()
    assert start[2] == 0.0


@pytest.mark.parametrize("rule", RULES)
def test_random_fleet_without_deadlines_places_everything_validly(rule: str) -> None:
    sp = random_schedule(300, 12, seed=1, deadlines=False)
    assign, start = list_schedule(sp, rule)
    assert violations(sp, assign, start) == []
    assert (assign[~sp.fleet.optional, 0] >= 0).all()


@pytest.mark.parametrize("seed", [2, 3])
def test_random_fleet_with_deadlines_breaks_no_rule_but_leaving_out(seed: int) -> None:
    sp = random_schedule(300, 12, seed=seed, deadlines=True)
    assign, start = best_of(sp)
    assert only_required_left_out(violations(sp, assign, start))
    placed = assign[:, 0] >= 0
    assert placed.sum() > 0.5 * sp.n_tasks


def test_past_its_deadline_the_list_schedule_leaves_the_rest_out() -> None:
    """A deadline already passed stops the schedule after its first clock check (64 tasks): the
    plan is partial and `violations` names the required tasks left out (no timing involved)."""
    import time

    from gpuplan.heuristics.list_schedule import list_schedule
    from gpuplan.program.schedule import violations
    from tests.strategies import schedule_of

    n = 200
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n", "gpu_counts": {"A": 4}}],
        "tasks": [{"id": f"t{i}", "work_h": 1} for i in range(n)],
    }
    inf = float("inf")
    sp = schedule_of(problem, [0.0] * n, [inf] * n, [inf] * n, [1.0] * n, [], (1.0, 0.0, 0.0))
    assign, start = list_schedule(sp, "spt", deadline=time.monotonic() - 1.0)
    placed = int((assign[:, 0] >= 0).sum())
    assert placed == 63
    assert any("required task" in v for v in violations(sp, assign, start))
    full, _ = list_schedule(sp, "spt")
    assert int((full[:, 0] >= 0).sum()) == n


def test_wspt_and_area_keys_follow_smiths_rule() -> None:
    """wspt: p / w (weight 0 last); area: p x the dominant share / w, so a 1-GPU task goes before
    a 4-GPU one of the same length and weight, where wspt ties them."""
    from gpuplan.heuristics.list_schedule import rule_keys

    nodes = [{"id": "n", "gpu_counts": {"A": 4}}]
    tasks = [
        {"id": "big", "gpus": 4, "duration_h": {"A": 2, "B": 2}},
        {"id": "one", "duration_h": {"A": 2, "B": 2}},
        {"id": "heavy", "duration_h": {"A": 3, "B": 3}},
        {"id": "free", "duration_h": {"A": 1, "B": 1}},
    ]
    sp = schedule_of(problem(tasks, nodes), [0] * 4, [INF] * 4, [INF] * 4, [1, 1, 6, 0], [], (0, 1, 0))
    wspt, area = rule_keys(sp, "wspt"), rule_keys(sp, "area")
    assert wspt.tolist() == [2.0, 2.0, 0.5, INF]
    assert area[1] < area[0] and area[2] < area[1] and area[3] == INF
    assert area[0] == pytest.approx(2.0) and area[1] == pytest.approx(0.5)


def test_rules_for_puts_the_objectives_rule_first_and_drops_duplicates() -> None:
    """Completion time: wspt first (spt, the same order under unit weights, dropped); tardiness:
    edd first; makespan: cp first; edd without dues or deadlines orders as fifo and is dropped."""
    from gpuplan.heuristics.list_schedule import rule_order, rules_for

    nodes = [{"id": "n", "gpu_counts": {"A": 4}}]
    tasks = [  # areas 3 x 1/4, 1 x 4/4, 2 x 1/4: area's order c, a, b; wspt's b, c, a
        {"id": "a", "duration_h": {"A": 3, "B": 3}},
        {"id": "b", "gpus": 4, "duration_h": {"A": 1, "B": 1}},
        {"id": "c", "duration_h": {"A": 2, "B": 2}},
    ]
    p = problem(tasks, nodes)
    unit = schedule_of(p, [0, 1, 2], [INF] * 3, [INF] * 3, [1, 1, 1], [], (0, 1, 0))
    got = rules_for(unit)
    assert rule_order(unit, "area").tolist() == [2, 0, 1]
    assert got[0] == "wspt" and "spt" not in got and "area" in got and "cp" in got
    assert ("edd" in got) != ("fifo" in got)  # one order, one rule
    weighted = schedule_of(p, [0, 1, 2], [INF] * 3, [INF] * 3, [10, 1, 1], [], (0, 1, 0))
    assert rules_for(weighted)[:2] == ("wspt", "spt")
    late = schedule_of(p, [0, 1, 2], [INF] * 3, [5, 1, 3], [1, 1, 1], [], (0, 0, 1))
    assert rules_for(late)[0] == "edd"
    span = schedule_of(p, [0, 1, 2], [INF] * 3, [INF] * 3, [1, 1, 1], [], (1, 0, 0))
    assert rules_for(span)[0] == "cp"

"""The priority repair: a plan cut short may leave out a task that lower-priority work keeps out."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given

import gpuplan
from benchmarks.size_ladder import ladder_problem
from gpuplan.api import parse_problem
from gpuplan.heuristics import fleet_greedy as fleet_greedy_module
from gpuplan.heuristics.fleet_greedy import fleet_greedy, honour_priorities
from gpuplan.program.decode_fleet import decode_fleet
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.verify import VerificationError, verify
from gpuplan.status import Status
from tests.strategies import SETTINGS, fleets

GANG_BLOCKED = {
    "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 1}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 2}}, {"id": "n1", "gpu_counts": {"A": 1}}],
    "tasks": [
        {"id": "small", "work_h": 1, "optional": True, "priority": 0},
        {"id": "gang", "gpus": 2, "work_h": 1, "optional": True, "priority": 5},
    ],
}


def _plan(c, assign: np.ndarray) -> gpuplan.Plan:
    return decode_fleet(
        c,
        assign,
        Status.FEASIBLE,
        None,
        solver="greedy",
        phases=["greedy"],
        requested="greedy",
        reason="",
        started=time.monotonic(),
        warm=None,
        incumbents=[],
        stats={},
    )


def test_a_low_priority_task_gives_way_to_a_gang() -> None:
    """The small task sits on the two-GPU node the gang needs: the repair moves it to the other node."""
    c = compile_fleet(gpuplan.Problem.model_validate(GANG_BLOCKED))
    p = c.program
    assign = p.empty_assign()
    assign[0, 0] = 0  # 'small' on n0's first GPU; 'gang' left out
    try:
        verify(_plan(c, assign), c.source)
        raise AssertionError("the verifier should reject the blocked gang")
    except VerificationError as exc:
        assert "'gang' (priority 5) left out" in str(exc)
    fixed, count = honour_priorities(p, assign)
    assert count == 1
    assert set(fixed[1][fixed[1] >= 0].tolist()) == {0, 1}  # the gang takes n0
    assert fixed[0, 0] == 2  # and the small task moved to n1
    verify(_plan(c, fixed), c.source)


@SETTINGS
@given(fleets())
def test_a_reversed_greedy_is_repaired_into_a_plan_the_verifier_accepts(data: dict) -> None:
    """Greedy in the wrong order (lowest priority first), then the repair: every rule the verifier
    checks holds, priority dominance included, and the plan is no worse for the higher tiers."""
    problem = gpuplan.Problem.model_validate(data)
    c = compile_fleet(problem)
    p = c.program
    order = np.lexsort((np.arange(p.n_tasks), p.priority))  # lowest priority first: the wrong way
    st = fleet_greedy(p, order=order)
    assume(not np.any((st.assign[:, 0] < 0) & ~p.optional))  # a plan with every required task
    fixed, _ = honour_priorities(p, st.assign.copy())
    assert p.violations(fixed) == []
    verify(_plan(c, fixed), problem)
    levels = np.unique(p.priority)[::-1]
    before = tuple(int(((st.assign[:, 0] >= 0) & (p.priority == v)).sum()) for v in levels)
    after = tuple(int(((fixed[:, 0] >= 0) & (p.priority == v)).sum()) for v in levels)
    assert after >= before  # placed per tier, highest first: lexicographically no worse


def _every_node_with_victims(st: object, t: int, lower: np.ndarray) -> np.ndarray:
    """The repair's reference: try every node that holds lower-priority work."""
    return np.unique(st.p.gpu_node[st.assign[lower, 0]])  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_promotion_skips_only_nodes_where_the_task_cannot_fit(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repair with its node prefilter (`_room_without`) makes exactly the changes of the repair
    that tries every node, on a ladder fleet filled lowest priority first."""
    p = compile_fleet(parse_problem(ladder_problem(400, seed=seed, priorities=True)), flat_tiers=True).program
    order = np.lexsort((np.arange(p.n_tasks), p.priority))  # lowest priority first: much to repair
    start = fleet_greedy(p, order=order).assign
    fast, placed = honour_priorities(p, start.copy())
    monkeypatch.setattr(fleet_greedy_module, "_room_without", _every_node_with_victims)
    slow, placed_slow = honour_priorities(p, start.copy())
    assert placed == placed_slow and placed > 0
    assert np.array_equal(fast, slow)


CHEAPEST_ROOM = {
    "gpu_types": [
        {"name": "X", "memory_gb": 80, "cost_per_hour": 1},
        {"name": "Y", "memory_gb": 80, "cost_per_hour": 1},
    ],
    "nodes": [{"id": "n0", "gpu_counts": {"X": 1}}, {"id": "n1", "gpu_counts": {"Y": 1}}],
    "tasks": [
        {"id": "middle", "work_h": 1, "optional": True, "priority": 1, "allowed_types": ["X"]},
        {"id": "low", "work_h": 1, "optional": True, "priority": 0},
        {"id": "high", "work_h": 1, "optional": True, "priority": 2},
    ],
}


def test_a_promotion_takes_room_from_the_lowest_tier_it_can() -> None:
    """'high' fits once either node's work leaves. n0 comes first but holds 'middle', which fits
    nowhere else; n1 holds 'low': the repair takes n1, so only the lowest tier loses a task (taking
    the first node left 'middle' out for good: nothing of lower priority blocks it then)."""
    c = compile_fleet(gpuplan.Problem.model_validate(CHEAPEST_ROOM))
    p = c.program
    assign = p.empty_assign()
    assign[0, 0] = 0  # 'middle' on n0's GPU
    assign[1, 0] = 1  # 'low' on n1's GPU; 'high' left out
    fixed, count = honour_priorities(p, assign)
    assert count == 1
    assert fixed[2, 0] == 1 and fixed[0, 0] == 0 and fixed[1, 0] < 0
    verify(_plan(c, fixed), c.source)

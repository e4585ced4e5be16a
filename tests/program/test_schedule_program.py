"""The scheduled program's evaluation: `violations` rejects each broken rule (one tampered plan per
rule, next to the same plan untampered), `objective` adds the time terms, `lower_bound` holds."""

from __future__ import annotations

import numpy as np
import pytest

from gpuplan.program.fleet import NONE
from gpuplan.program.schedule import (
    ScheduleProgram,
    ends,
    lower_bound,
    objective,
    topological_order,
    violations,
)
from tests.strategies import schedule_of

INF = float("inf")
TYPES = [
    {"name": "A", "memory_gb": 80, "cost_per_hour": 1.0},
    {"name": "B", "memory_gb": 80, "cost_per_hour": 1.0, "speed": 2},
]


def program(
    tasks: list[dict],
    nodes: list[dict] | None = None,
    release: list[float] | None = None,
    deadline: list[float] | None = None,
    due: list[float] | None = None,
    pred: list[tuple[int, int]] = (),
    w: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> ScheduleProgram:
    n = len(tasks)
    nodes = nodes or [{"id": "n0", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 64}]
    data = {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}
    return schedule_of(
        data,
        release or [0.0] * n,
        deadline or [INF] * n,
        due or [INF] * n,
        [1.0] * n,
        list(pred),
        w,
    )


def rows(*gpus: list[int], k: int = 1) -> np.ndarray:
    a = np.full((len(gpus), k), NONE, dtype=np.int64)
    for t, gs in enumerate(gpus):
        a[t, : len(gs)] = gs
    return a


def task(i: int, **kw: object) -> dict:
    return {"id": f"t{i}", "work_h": 2.0, **kw}


def assert_only(
    sp: ScheduleProgram, assign: np.ndarray, good: list[float], bad: list[float], word: str
) -> None:
    """`good` starts break nothing; `bad` starts break the rule named by `word` (and only it)."""
    assert violations(sp, assign, np.array(good, dtype=np.float64)) == []
    found = violations(sp, assign, np.array(bad, dtype=np.float64))
    assert found and all(word in v for v in found), found


def test_gpu_share_over_one_at_an_instant() -> None:
    sp = program([task(0, gpu_share=0.5), task(1, gpu_share=0.75)])
    assert_only(sp, rows([0], [0]), [0, 2], [0, 1.5], "shares over 1")


def test_shares_within_one_overlap_freely() -> None:
    sp = program([task(0, gpu_share=0.5), task(1, gpu_share=0.5), task(2, gpu_share=0.5)])
    assert violations(sp, rows([0], [0], [0]), np.array([0.0, 1.0, 2.0])) == []
    assert violations(sp, rows([0], [0], [0]), np.array([0.0, 1.0, 1.5]))


def test_gpu_memory_over_at_an_instant() -> None:
    sp = program([task(0, gpu_share=0.25, gpu_memory_gb=50), task(1, gpu_share=0.25, gpu_memory_gb=40)])
    assert_only(sp, rows([0], [0]), [0, 2], [0, 1], "memory over")


def test_node_cpu_at_an_instant() -> None:
    sp = program([task(0, cpu_cores=6), task(1, cpu_cores=4)])
    assert_only(sp, rows([0], [1]), [0, 2], [0, 1.9], "CPU over")


def test_node_host_memory_at_an_instant() -> None:
    sp = program([task(0, memory_gb=40), task(1, memory_gb=40)])
    assert_only(sp, rows([0], [1]), [0, 2], [1, 2], "host memory over")


def test_release() -> None:
    sp = program([task(0)], release=[1.0])
    assert_only(sp, rows([0]), [1.0], [0.5], "before its release")


def test_deadline() -> None:
    sp = program([task(0)], deadline=[3.0])
    assert_only(sp, rows([0]), [1.0], [1.5], "after its deadline")


def test_precedence() -> None:
    sp = program([task(0), task(1)], pred=[(0, 1)])
    assert_only(sp, rows([0], [1]), [0, 2], [0, 1], "before its predecessor")


def test_successor_of_a_left_out_task() -> None:
    sp = program([task(0, optional=True), task(1, optional=True)], pred=[(0, 1)])
    start = np.array([np.nan, 0.0])
    assert violations(sp, rows([], []), np.full(2, np.nan)) == []
    found = violations(sp, rows([], [1]), start)
    assert found == ["task 1: placed though its predecessor 0 is left out"]


def test_spread_group_overlap_on_one_node() -> None:
    sp = program([task(0, anti_affinity="s"), task(1, anti_affinity="s")])
    assert_only(sp, rows([0], [1]), [0, 2], [0, 1], "spread group")


def test_spread_group_on_two_nodes_at_once() -> None:
    nodes = [{"id": "n0", "gpu_counts": {"A": 1}}, {"id": "n1", "gpu_counts": {"A": 1}}]
    sp = program([task(0, anti_affinity="s"), task(1, anti_affinity="s")], nodes=nodes)
    assert violations(sp, rows([0], [1]), np.array([0.0, 0.0])) == []


def test_gang_spanning_nodes() -> None:
    """A gang has one start by construction (one entry of `start` per task); one node is checked."""
    nodes = [{"id": "n0", "gpu_counts": {"A": 2}}, {"id": "n1", "gpu_counts": {"A": 2}}]
    sp = program([task(0, gpus=2)], nodes=nodes)
    assert violations(sp, rows([0, 1], k=2), np.zeros(1)) == []
    assert violations(sp, rows([1, 2], k=2), np.zeros(1)) == ["task 0: gang spans nodes"]


def test_start_given_to_a_left_out_task_and_none_to_a_placed_one() -> None:
    sp = program([task(0, optional=True), task(1)])
    found = violations(sp, rows([], [0]), np.array([0.0, np.nan]))
    assert sorted(found) == ["task 0: left out but given a start", "task 1: placed without a start time"]


def test_back_to_back_with_float_noise_is_no_overlap() -> None:
    """0.1 + 0.2 ends an ulp past 0.3: within the time tolerance, not an overlap."""
    sp = program(
        [{"id": "a", "duration_h": {"A": 0.2, "B": 0.2}}, {"id": "b", "duration_h": {"A": 1, "B": 1}}],
        pred=[(0, 1)],
    )
    assert violations(sp, rows([0], [0]), np.array([0.1, 0.3])) == []


def test_slowest_gpu_sets_a_mixed_gang_duration() -> None:
    nodes = [{"id": "n0", "gpu_counts": {"A": 1, "B": 1}}]
    sp = program([task(0, gpus=2, same_type=False)], nodes=nodes)
    assert ends(sp, rows([0, 1], k=2), np.zeros(1)).tolist() == [2.0]  # A: 2 h, B: 1 h


def test_objective_adds_the_time_terms() -> None:
    sp = program([task(0), task(1)], due=[1.0, INF], pred=[(0, 1)], w=(1.0, 0.5, 2.0))
    a, s = rows([0], [0]), np.array([0.0, 2.0])
    placement = sp.fleet.objective(a)
    # makespan 4, completion 0.5 * (2 + 4), tardiness 2 * (2 - 1)
    assert objective(sp, a, s) == pytest.approx(placement + 4 + 3 + 2)


def test_lower_bound_chain_and_area() -> None:
    """Chain 0 -> 1 (2 h + 2 h from release 1): makespan >= 5; four 2 h tasks on 2 GPUs: >= 4."""
    sp = program([task(0), task(1)], release=[1.0, 0.0], pred=[(0, 1)], w=(1.0, 0.0, 0.0))
    assert lower_bound(sp) == pytest.approx(5.0)
    sp = program([task(i) for i in range(4)], w=(1.0, 0.0, 0.0))
    assert lower_bound(sp) == pytest.approx(4.0)
    sp = program([task(i) for i in range(4)], w=(0.0, 1.0, 0.0))
    assert lower_bound(sp) == pytest.approx(8.0)


def test_lower_bound_skips_optional_tasks_but_not_ancestors_of_required_ones() -> None:
    sp = program([task(0, optional=True), task(1)], pred=[(0, 1)], w=(0.0, 1.0, 0.0))
    assert lower_bound(sp) == pytest.approx(2.0 + 4.0)
    sp = program([task(0, optional=True), task(1, optional=True)], pred=[(0, 1)], w=(0.0, 1.0, 0.0))
    assert lower_bound(sp) == 0.0


def test_topological_order_and_cycles() -> None:
    assert topological_order(3, np.array([[2, 0], [0, 1]])).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="cycle"):
        topological_order(2, np.array([[0, 1], [1, 0]]))

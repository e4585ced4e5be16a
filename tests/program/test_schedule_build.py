"""A scheduled problem's program: windows in eligibility, shares side by side at each instant, the
time arrays and criteria weights, drop penalties above the time terms; peaks over time."""

from __future__ import annotations

import numpy as np
import pytest

from gpuplan import InputError, Problem
from gpuplan.program.decode_fleet import peak_use
from gpuplan.program.fleet import compile_fleet

FLEET = {
    "gpu_types": [{"name": "A", "memory_gb": 40, "speed": 1.0}, {"name": "B", "memory_gb": 80, "speed": 2.0}],
    "nodes": [{"id": "n", "gpus": [{"id": "a0", "type": "A"}, {"id": "b0", "type": "B"}]}],
    "horizon_h": 10,
}


def problem(tasks: list[dict], **extra: object) -> Problem:
    return Problem.model_validate({**FLEET, "tasks": tasks, **extra})


def test_windows_decide_eligibility_and_loads_are_side_by_side() -> None:
    """Work 8 h: 8 h on A, 4 h on B. Released at 3 with a deadline of 9 it fits only on B; the
    horizon no longer budgets GPU-hours (loads are shares, capacity 1)."""
    c = compile_fleet(problem([{"id": "t", "work_h": 8, "release_h": 3, "deadline_h": 9, "gpu_share": 0.5}]))
    p = c.program
    assert c.times is not None and not p.horizon and p.capacity == 1.0
    by_type = {p.type_names[p.gpu_type[g]]: p.eligible(0)[g] for g in range(p.n_gpus)}
    assert by_type == {"A": False, "B": True}
    assert p.load_c[0, p.gpu_class[1]] == 0.5
    assert c.times.release.tolist() == [3.0] and c.times.deadline.tolist() == [9.0]


def test_time_arrays_precedences_and_weights() -> None:
    c = compile_fleet(
        problem(
            [
                {"id": "a", "work_h": 2, "weight": 2},
                {"id": "b", "work_h": 2, "after": ["a"], "due_h": 5},
            ],
            objective={
                "kind": "weighted",
                "terms": [{"kind": "cost"}, {"kind": "completion_time", "weight": 3}],
            },
        )
    )
    tm = c.times
    assert tm is not None
    assert tm.pred.tolist() == [[0, 1]] and tm.weight.tolist() == [2.0, 1.0]
    assert tm.due.tolist() == [np.inf, 5.0] and tm.w_completion == 3.0 and tm.w_makespan == 0.0
    assert ("completion_time", 3.0) in c.terms


def test_drop_penalties_outweigh_the_time_terms() -> None:
    """An optional task is worth more than any makespan a plan could have."""
    c = compile_fleet(problem([{"id": "a", "work_h": 4, "optional": True}], objective={"kind": "makespan"}))
    assert c.times is not None and c.program.penalty[0] > c.times.w_makespan * c.times.end_max


def test_balance_is_refused_for_a_schedule() -> None:
    with pytest.raises(InputError, match="balance is not available for a scheduled problem"):
        compile_fleet(problem([{"id": "a", "work_h": 1, "release_h": 1}], objective={"kind": "balance"}))


def test_unscheduled_problem_has_no_times() -> None:
    c = compile_fleet(problem([{"id": "a", "work_h": 1}]))
    assert c.times is None and c.program.horizon


def test_peak_use_counts_only_overlapping_tasks() -> None:
    """Three half-GPU tasks on one GPU: [0, 2), [2, 4) back to back, [1, 3) across both: peak 1.0;
    memory 10 + 30 at the peak."""
    c = compile_fleet(
        Problem.model_validate(
            {
                **{k: v for k, v in FLEET.items() if k != "horizon_h"},
                "tasks": [
                    {"id": f"t{i}", "work_h": 2, "gpu_share": 0.5, "gpu_memory_gb": m, "release_h": 0.5}
                    for i, m in enumerate((10, 20, 30))
                ],
            }
        )
    )
    p = c.program
    assign = np.array([[0], [0], [0]])
    share, mem = peak_use(p, assign, np.array([0.0, 2.0, 1.0]), np.array([2.0, 4.0, 3.0]))
    assert share[0] == pytest.approx(1.0) and share[1] == 0.0
    assert mem[0] == pytest.approx(max(10 + 30, 20 + 30))

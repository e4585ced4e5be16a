"""The one builder: the matrix form is a fleet program with its own resources, and its GAP view is
the dense program the GAP backends take."""

from __future__ import annotations

import numpy as np
import pytest

import gpuplan
from gpuplan import MatrixProblem, Problem, Status
from gpuplan.program import NONE, build, compile_problem, gap_view
from gpuplan.program.gap_view import gap_like

TWO_RESOURCES = {
    "matrix": {
        "cost": [[3, 7, None], [2, 4, 9]],
        "load": [[[4, 5, 1], [1, 2, 8]], [[1, 1, 1], [2, 1, 1]]],
        "capacity": [[9, 6, 5], [2, 2, 1]],
        "task_ids": ["a", "b"],
        "gpu_ids": ["x", "y", "z"],
    }
}


def test_matrix_form_is_a_fleet_program_with_its_own_resources() -> None:
    """One class and pseudo-node per GPU, no shares, R further resources; null and too-heavy pairs
    ineligible; a GAP by the same predicate as a Problem's program."""
    c = build(MatrixProblem.model_validate(TWO_RESOURCES))
    p = c.program
    assert not p.shares and p.extra_names == ("load0", "load1")
    assert np.array_equal(p.gpu_class, np.arange(3)) and np.array_equal(p.gpu_node, np.arange(3))
    # (a, z) is null; (b, z) loads 8 > 5 on load0
    assert p.eligible_c.tolist() == [[True, True, False], [True, True, False]]
    assert np.array_equal(p.extra_cap, [[9, 6, 5], [2, 2, 1]])
    assert gap_like(c) and c.node_ids == (None, None, None)


def test_matrix_view_lays_out_only_its_resources() -> None:
    """The view carries load0 and load1 (no share or memory rows) with the per-GPU capacities."""
    view = compile_problem(MatrixProblem.model_validate(TWO_RESOURCES))
    assert view.program.resource_names == ("load0", "load1")
    assert np.array_equal(view.program.capacity, [[9, 6, 5], [2, 2, 1]])
    assert view.gpu_types == (None, None, None) and view.duration is None
    same = gap_view(build(MatrixProblem.model_validate(TWO_RESOURCES)))
    assert same is not None and np.array_equal(same.program.cost, view.program.cost)


def test_violations_see_the_further_resources() -> None:
    """Two tasks whose load1 together exceeds GPU y's 2 are caught by FleetProgram.violations."""
    p = build(MatrixProblem.model_validate(TWO_RESOURCES)).program
    assign = np.array([[1], [1]])  # load1: 1 + 1 <= 2 fits; load0: 5 + 2 = 7 > 6 does not
    assert p.violations(assign) == ["GPU load0 over capacity"]
    assert p.violations(np.array([[0], [1]])) == []
    assert p.max_utilization(np.array([[0], [1]])) == pytest.approx(max(4 / 9, 1 / 2, 2 / 6, 1 / 2))
    assert NONE == -1


def test_matrix_plan_through_the_one_decode() -> None:
    """The matrix form's plan: no node, type or duration; usage per resource; verified."""
    plan = gpuplan.solve(TWO_RESOURCES, time_limit_s=2)
    assert plan.status is Status.OPTIMAL and plan.objective == 3 + 4
    by_task = {a.task: a for a in plan.assignments}
    assert by_task["a"].gpus == ["x"] and by_task["b"].gpus == ["y"]
    assert all(a.node is None and a.gpu_type is None and a.duration_h is None for a in plan.assignments)
    usage = {u.gpu: u for u in plan.gpus}
    assert usage["x"].used == {"load0": 4.0, "load1": 1.0} and usage["x"].capacity == {
        "load0": 9.0,
        "load1": 2.0,
    }
    assert usage["z"].tasks == 0


def test_matrix_reasons_come_from_the_one_decode() -> None:
    """A task whose every cost is null, and one too heavy for every GPU it may use."""
    m = {
        "matrix": {
            "cost": [[None, None], [1, 1], [1, None]],
            "load": [[1, 1], [1, 1], [5, 1]],
            "capacity": [2, 2],
        }
    }
    plan = gpuplan.solve(m, time_limit_s=1)
    assert plan.status is Status.INFEASIBLE
    why = {u.task: u.reason for u in plan.unassigned}
    assert why["0"] == "every cost entry is null: no GPU may take this task"
    assert why["2"] == "its load exceeds the capacity of every GPU it may use"


def test_build_refuses_other_inputs() -> None:
    with pytest.raises(TypeError, match="cannot compile dict"):
        build({"matrix": {}})  # type: ignore[arg-type]
    assert isinstance(
        build(
            Problem.model_validate(
                {
                    "gpu_types": [{"name": "A", "memory_gb": 16}],
                    "nodes": [{"id": "n", "gpus": [{"id": "g", "type": "A"}]}],
                    "tasks": [{"id": "t", "work_h": 1}],
                }
            )
        ).source,
        Problem,
    )

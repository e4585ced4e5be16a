"""The compiled Program: read-only arrays, replace(), matrix compilation and integer scaling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import gpuplan
from gpuplan import MatrixProblem, Problem, Program, compile_problem

ARRAY_FIELDS = [f.name for f in dataclasses.fields(Program) if f.type == "np.ndarray"]


def matrix(cost, load, capacity, **extra) -> MatrixProblem:
    """A MatrixProblem from plain lists."""
    return MatrixProblem.model_validate(
        {"matrix": {"cost": cost, "load": load, "capacity": capacity, **extra}}
    )


@pytest.fixture
def program() -> Program:
    """A small compiled matrix program with a forbidden pair."""
    return compile_problem(matrix([[1, 2, None], [4, 5, 6]], [[1, 2, None], [1, 1, 1]], [2, 2, 2])).program


def rel_tol(x: np.ndarray) -> np.ndarray:
    """The 1e-9 relative tolerance compile uses to absorb floating-point noise in scaled values."""
    return 1e-9 * np.maximum(1.0, np.abs(x))


# --- immutability ----------------------------------------------------------------------------------


def test_array_fields_listed():
    """Sanity check: the Program has the expected array fields."""
    assert {"cost", "eligible", "load", "capacity", "cost_int", "load_int", "capacity_int"} <= set(
        ARRAY_FIELDS
    )


@pytest.mark.parametrize("name", ARRAY_FIELDS)
def test_arrays_read_only(program, name):
    """Every array of a Program is read-only: assigning into it raises ValueError."""
    arr = getattr(program, name)
    assert not arr.flags.writeable
    with pytest.raises(ValueError):
        arr[(0,) * arr.ndim] = arr[(0,) * arr.ndim]


def test_fields_cannot_be_rebound(program):
    """The Program dataclass is frozen."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.cost_scale = 3.0  # type: ignore[misc]


def test_replace_returns_copy(program):
    """replace() returns a new Program with the change; the original is untouched."""
    before = program.cost.copy()
    new_cost = program.cost + 10.0
    other = program.replace(cost=new_cost, cost_scale=7.0)
    assert other is not program
    assert np.array_equal(other.cost, before + 10.0)
    assert other.cost_scale == 7.0
    assert np.array_equal(program.cost, before)
    assert program.cost_scale == 1.0
    assert not other.cost.flags.writeable
    assert np.array_equal(other.eligible, program.eligible)


def test_replace_checks_shapes(program):
    """replace() with an array of the wrong shape is refused."""
    with pytest.raises(ValueError, match="cost_int"):
        program.replace(cost_int=np.zeros((5, 5), dtype=np.int64))


def test_compile_does_not_touch_input():
    """compile_problem leaves the input model equal to what it was."""
    m = matrix([[1.5, None], [2, 3]], [[1, None], [1, 1]], [1, 2])
    snapshot = m.model_dump()
    compile_problem(m)
    compile_problem(m.matrix)
    assert m.model_dump() == snapshot


def test_compile_rejects_other_types():
    """compile_problem refuses something that is neither a Problem nor a matrix."""
    with pytest.raises(TypeError):
        compile_problem({"matrix": {}})  # type: ignore[arg-type]


# --- matrix compilation ------------------------------------------------------------------------------


def test_matrix_costs_and_eligibility(program):
    """Costs are kept where given, nulls become ineligible (cost 0), shapes follow the matrix."""
    assert program.n_tasks == 2 and program.n_gpus == 3 and program.n_resources == 1
    assert program.eligible.tolist() == [[True, True, False], [True, True, True]]
    assert program.cost.tolist() == [[1, 2, 0], [4, 5, 6]]
    assert program.load.tolist() == [[[1, 2, 0], [1, 1, 1]]]
    assert program.capacity.tolist() == [[2, 2, 2]]
    assert program.resource_names == ("load",)
    assert not program.optional.any()
    assert not program.penalty.any()


def test_matrix_pair_too_big_is_ineligible():
    """A pair whose load alone exceeds the GPU's capacity is not eligible."""
    p = compile_problem(matrix([[1, 2]], [[3, 1]], [2, 2])).program
    assert p.eligible.tolist() == [[False, True]]
    assert p.cost.tolist() == [[0, 2]]


def test_matrix_two_resources_named():
    """Two resources are compiled to load0/load1 with per-resource scaling."""
    p = compile_problem(
        matrix([[1, 2]], [[[1, 1]], [[0.5, 0.25]]], [[1, 1], [1, 1]], task_ids=["t"], gpu_ids=["a", "b"])
    )
    assert p.program.resource_names == ("load0", "load1")
    assert p.program.load_scale.tolist() == [1.0, 100.0]
    assert p.program.load_int[1].tolist() == [[50, 25]]
    assert p.task_ids == ("t",) and p.gpu_ids == ("a", "b")


def test_matrix_default_ids():
    """Without ids, tasks and GPUs are named '0', '1', ..."""
    c = compile_problem(matrix([[1, 2], [3, 4]], [[1, 1], [1, 1]], [2, 2]))
    assert c.task_ids == ("0", "1") and c.gpu_ids == ("0", "1")
    assert c.gpu_nodes == (None, None) and c.duration is None


def test_program_evaluation_helpers(program):
    """objective, objective_int, used_int and is_feasible agree with hand computation."""
    assign = np.array([0, 2])
    assert program.objective(assign) == 1 + 6
    assert program.objective_int(assign) == 7
    assert program.used_int(assign).tolist() == [[1, 0, 1]]
    assert program.is_feasible(assign)
    assert not program.is_feasible(np.array([2, 0]))  # task 0 may not run on GPU 2
    assert not program.is_feasible(np.array([1, 1]))  # 2 + 1 > 2 on GPU 1
    assert not program.is_feasible(np.array([-1, 0]))  # a required task dropped
    assert not program.is_feasible(np.array([0]))


# --- Problem compilation -----------------------------------------------------------------------------


def test_problem_compilation_costs_and_resources():
    """A Problem compiles to cost = duration x share x price and share/memory resources."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 40, "speed": 2, "cost_per_hour": 3}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
            "tasks": [{"id": "t", "work_h": 4, "gpu_share": 0.5, "gpu_memory_gb": 10}],
        }
    )
    c = compile_problem(p)
    prog = c.program
    assert c.gpu_ids == ("n/A/0", "n/A/1")
    assert prog.resource_names == ("gpu_share", "gpu_memory_gb")
    assert prog.cost.tolist() == [[3.0, 3.0]]  # 4 h / speed 2 x share 0.5 x 3 per hour
    assert prog.capacity.tolist() == [[1, 1], [40, 40]]
    assert c.duration.tolist() == [[2.0, 2.0]]


def test_problem_horizon_resource():
    """With a horizon the only resource is gpu_time_h = duration x share, capacity = horizon."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 40, "speed": 2}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [{"id": "t", "work_h": 4, "gpu_share": 0.5}],
            "horizon_h": 8,
        }
    )
    prog = compile_problem(p).program
    assert prog.resource_names == ("gpu_time_h",)
    assert prog.load.tolist() == [[[1.0]]]
    assert prog.capacity.tolist() == [[8.0]]


def test_priority_penalties_are_lexicographic():
    """One more placed task of a higher tier outweighs every lower-tier task plus all costs."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [
                {"id": "lo1", "work_h": 3, "optional": True, "priority": 0},
                {"id": "lo2", "work_h": 5, "optional": True, "priority": 0},
                {"id": "hi", "work_h": 1, "optional": True, "priority": 1},
                {"id": "req", "work_h": 2},
            ],
        }
    )
    prog = compile_problem(p).program
    pen = prog.penalty_int
    total_cost = int(np.abs(prog.cost_int).max(axis=1).sum())
    assert pen[3] == 0
    assert pen[0] == pen[1] > total_cost
    assert pen[2] > pen[0] + pen[1] + total_cost


# --- integer scaling -------------------------------------------------------------------------------------


def test_integer_inputs_scale_one():
    """Integer costs, loads and capacities give scale 1, an exact scaling and identical int twins."""
    p = compile_problem(matrix([[3, 7], [2, None]], [[4, 5], [1, None]], [9, 6])).program
    assert p.cost_scale == 1.0
    assert p.load_scale.tolist() == [1.0]
    assert p.scaling_exact
    assert p.cost_int.tolist() == [[3, 7], [2, 0]]
    assert p.load_int.tolist() == [[[4, 5], [1, 0]]]
    assert p.capacity_int.tolist() == [[9, 6]]


@pytest.mark.parametrize(
    ("costs", "scale"),
    [([1.25, 2, 3], 100.0), ([0.5, 1, 1], 10.0), ([0.001, 2, 3], 1000.0), ([1.1, 2.2, 3.3], 10.0)],
)
def test_decimal_costs_exact_power_of_ten(costs, scale):
    """Decimal costs get the smallest exact power-of-ten scale and exact integer twins."""
    p = compile_problem(matrix([costs], [[1, 1, 1]], [1, 1, 1])).program
    assert p.cost_scale == scale
    assert p.scaling_exact
    assert p.cost_int.tolist() == [[round(c * scale) for c in costs]]
    assert np.allclose(p.cost_int / p.cost_scale, p.cost, rtol=0, atol=1e-12)


def test_decimal_loads_exact_power_of_ten():
    """Decimal loads and capacities get an exact power-of-ten scale per resource."""
    p = compile_problem(matrix([[1, 1]], [[0.25, 0.5]], [0.75, 1.5])).program
    assert p.load_scale.tolist() == [100.0]
    assert p.scaling_exact
    assert p.load_int.tolist() == [[[25, 50]]]
    assert p.capacity_int.tolist() == [[75, 150]]


@pytest.mark.parametrize(
    ("load", "capacity"),
    [
        ([[0.0123456789789, 0.2]], [0.7, 1.0]),
        ([[1 / 30, 1 / 7], [0.0071, 2 / 3]], [1.0, 0.9]),
    ],
)
def test_inexact_loads_round_up_capacities_down(load, capacity):
    """Inexact load scaling rounds loads up and capacities down (within float-noise tolerance)."""
    p = compile_problem(matrix([[1, 1]] * len(load), load, capacity)).program
    assert not p.scaling_exact
    scale = p.load_scale[0]
    scaled_load = p.load * scale
    scaled_cap = p.capacity * scale
    assert np.all(p.load_int >= scaled_load - rel_tol(scaled_load))
    assert np.all(p.capacity_int <= scaled_cap + rel_tol(scaled_cap))
    assert np.all(p.load_int - scaled_load < 1.0)
    assert np.all(scaled_cap - p.capacity_int < 1.0 + rel_tol(scaled_cap))


def test_inexact_scaling_widens_capacity_by_the_tolerance():
    """Inexact scaling: loads rounded to nearest, capacity widened by at most CAPACITY_TOLERANCE."""
    from gpuplan.program.compile import CAPACITY_TOLERANCE

    p = compile_problem(matrix([[1, 1]], [[0.0123456789789, 0.2]], [1.0, 1.0])).program
    scale = p.load_scale[0]
    assert not p.scaling_exact
    assert np.all(np.abs(p.load_int - p.load * scale) <= 0.5)
    assert np.all(p.capacity_int >= np.floor(p.capacity * scale))
    assert np.all(p.capacity_int <= p.capacity * scale * (1 + CAPACITY_TOLERANCE))


def test_scaling_exact_only_for_exact_values():
    """scaling_exact is False when a load is not a multiple of 10^-9 (pi), and exact values stay exact."""
    exact = compile_problem(matrix([[1, 1]], [[0.125, 0.1]], [10.0, 2.5])).program
    assert exact.scaling_exact
    pi = compile_problem(matrix([[1, 1]], [[3.14159265358979, 0.1]], [10.0, 2.5])).program
    assert not pi.scaling_exact


def test_inexact_scaling_overfills_at_most_by_the_tolerance():
    """With inexact scaling a GPU holds its capacity within the 1e-9 relative tolerance."""
    a, b = 0.0123456789789, 0.987654322  # a + b exceeds 1.0 by about 1e-9
    m = matrix([[1, 5], [1, 5]], [[a, a], [b, b]], [1.0, 1.0])
    plan = gpuplan.solve(m, solver="greedy", time_limit_s=5)
    assert plan.is_feasible
    for usage in plan.gpus:
        assert usage.used["load"] <= usage.capacity["load"] * (1 + 2e-9)


def test_a_sixth_of_an_hour_fills_the_horizon_exactly():
    """Six 1/6 h tasks exactly fill a 1 h horizon under inexact scaling (no false infeasibility)."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "H", "memory_gb": 80, "speed": 3}],
            "nodes": [{"id": "n", "gpu_counts": {"H": 1}}],
            "tasks": [{"id": f"t{i}", "work_h": 0.5} for i in range(6)],
            "horizon_h": 1,
        }
    )
    prog = compile_problem(p).program
    assert prog.loads_exact  # the widened capacity still contains every feasible plan
    assert prog.load_int[0, :, 0].sum() <= prog.capacity_int[0, 0]


def test_problem_share_scaling_exact():
    """Quarter shares and integer memory scale exactly."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 24, "cost_per_hour": 1.5}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [{"id": "t", "work_h": 2, "gpu_share": 0.25, "gpu_memory_gb": 8}],
        }
    )
    prog = compile_problem(p).program
    assert prog.scaling_exact
    assert prog.load_scale.tolist() == [100.0, 1.0]
    assert prog.load_int[:, 0, 0].tolist() == [25, 8]
    assert prog.capacity_int[:, 0].tolist() == [100, 24]
    assert prog.cost_int[0, 0] == round(prog.cost[0, 0] * prog.cost_scale)


def test_one_scaling_rule_rounds_inexact_loads_up() -> None:
    """The one integer scaling (`scale_resource`, also the fleet CP-SAT model's): when no power of ten
    makes a resource integral, loads round up and capacities down from cap x s x (1 + 1e-9), so an
    integer-feasible plan never exceeds a capacity beyond that tolerance."""
    p = compile_problem(matrix([[1, 1], [1, 1]], [[1 / 3, 2 / 3], [2 / 3, 1 / 7]], [1.0, 1.0])).program
    assert not p.scaling_exact and p.loads_exact  # inexact, yet still a relaxation
    s = p.load_scale[0]
    assert np.all(p.load_int[0] >= p.load[0] * s)
    assert np.all(p.capacity_int[0] <= p.capacity[0] * s * (1 + 1e-9))
    assert np.all(p.load_int[0] <= p.load[0] * s + 1)

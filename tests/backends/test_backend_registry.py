"""Backends declare what they accept and whether they can run; a named one that cannot is an input error."""

from __future__ import annotations

import pytest

import gpuplan
from gpuplan import native
from gpuplan.backends import REGISTRY, require
from gpuplan.errors import InputError
from gpuplan.program import compile_fleet, compile_problem
from gpuplan.program.gap_view import gap_view

SELECTOR = {
    "gpu_types": [
        {"name": "A", "memory_gb": 80, "cost_per_hour": 3},
        {"name": "B", "memory_gb": 40, "cost_per_hour": 1},
    ],
    "nodes": [
        {"id": "east", "gpu_counts": {"A": 1, "B": 1}, "labels": {"zone": "east"}},
        {"id": "west", "gpu_counts": {"B": 1}, "labels": {"zone": "west"}},
    ],
    "tasks": [
        {"id": "pinned", "work_h": 2, "node_selector": {"zone": "east"}},
        {"id": "free", "work_h": 1},
        {"id": "big", "work_h": 1, "gpu_memory_gb": 60},
    ],
}
GANG = {**SELECTOR, "tasks": [{"id": "g", "gpus": 2, "work_h": 1}]}


def test_a_selector_problem_is_a_gap_and_every_backend_takes_it() -> None:
    """Labels only narrow eligibility: the program is a GAP, and milp equals cpsat on it."""
    view = gap_view(compile_fleet(gpuplan.Problem.model_validate(SELECTOR)))
    assert view is not None
    for name in ("greedy", "cpsat", "milp"):
        assert REGISTRY[name].accepts(view.program) == ""
    milp = gpuplan.solve(SELECTOR, solver="milp", time_limit_s=5)
    cpsat = gpuplan.solve(SELECTOR, solver="cpsat", time_limit_s=5)
    assert milp.status.value == cpsat.status.value == "optimal"
    assert milp.objective == pytest.approx(cpsat.objective)
    assert {a.task: a.node for a in milp.assignments}["pinned"] == "east"


def test_milp_refuses_a_fleet_program_naming_why() -> None:
    """A gang makes a fleet program: milp declares it does not accept it, and require says so."""
    program = compile_fleet(gpuplan.Problem.model_validate(GANG)).program
    assert "GAP programs only" in REGISTRY["milp"].accepts(program)
    assert REGISTRY["cpsat"].accepts(program) == "" and REGISTRY["greedy"].accepts(program) == ""
    with pytest.raises(InputError, match="'milp' cannot take this program") as info:
        require("milp", program)
    assert info.value.path == "solver"
    with pytest.raises(InputError, match="milp"):
        gpuplan.solve(GANG, solver="milp", time_limit_s=2)


def test_the_branch_and_bound_declares_its_needs() -> None:
    """bb takes single-resource programs with every task required, and runs only where it is built."""
    two_resources = compile_problem(gpuplan.Problem.model_validate(SELECTOR)).program
    assert two_resources.n_resources == 2  # share and memory side by side
    assert "one resource" in REGISTRY["bb"].accepts(two_resources)
    matrix = {"matrix": {"cost": [[1, 2], [2, 1]], "load": [[1, 1], [1, 1]], "capacity": [1, 1]}}
    single = compile_problem(gpuplan.parse_problem(matrix)).program
    assert REGISTRY["bb"].accepts(single) == ""
    assert (REGISTRY["bb"].available() == "") == native.available()


def test_unavailable_native_core_is_declared(monkeypatch) -> None:
    """Without the compiled core the bb backend says why it cannot run."""
    monkeypatch.setattr(native, "_gapbb", None)
    assert REGISTRY["bb"].available() == native.UNAVAILABLE


def test_unknown_names_are_refused() -> None:
    """Only the user-facing names may be asked for; the portfolio's inner backends may not."""
    program = compile_fleet(gpuplan.Problem.model_validate(GANG)).program
    for name in ("bb", "scip", "nope"):
        with pytest.raises(InputError, match="unknown backend"):
            require(name, program)

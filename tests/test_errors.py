"""One error root: user mistakes raise InputError naming the field; the CLI maps them to exit 2."""

from __future__ import annotations

import json

import pytest

import gpuplan
from gpuplan.cli import main
from gpuplan.errors import GpuplanError, InputError, VerificationError

FLEET = {
    "gpu_types": [{"name": "A", "memory_gb": 80, "cost_per_hour": 2}],
    "nodes": [{"id": "n0", "gpu_counts": {"A": 2}}],
    "tasks": [{"id": "gang", "gpus": 2, "work_h": 1}],
}


def test_error_classes_share_one_root() -> None:
    """InputError and VerificationError are GpuplanErrors; InputError is still a ValueError."""
    assert issubclass(InputError, GpuplanError) and issubclass(InputError, ValueError)
    assert issubclass(VerificationError, GpuplanError)
    err = InputError("tasks[0].gpus", "must be >= 1 (got 0)")
    assert (err.path, str(err)) == ("tasks[0].gpus", "tasks[0].gpus: must be >= 1 (got 0)")


def test_unknown_backend_is_an_input_error() -> None:
    """solve(solver='nope') names the field and the value."""
    with pytest.raises(InputError, match="nope") as info:
        gpuplan.solve(FLEET, solver="nope", time_limit_s=1)
    assert info.value.path == "solver"


def test_milp_on_a_fleet_problem_is_an_input_error() -> None:
    """A backend that does not take the program is refused as the user's choice, not a crash."""
    with pytest.raises(InputError) as info:
        gpuplan.solve(FLEET, solver="milp", time_limit_s=1)
    assert info.value.path == "solver"


def test_compile_step_input_errors_exit_2(tmp_path, capsys, monkeypatch) -> None:
    """An InputError raised while compiling reaches the CLI as exit 2, not 'internal error'."""
    import importlib

    solve_mod = importlib.import_module("gpuplan.strategy.fleet")

    def boom(*args: object, **kwargs: object) -> None:
        raise InputError("tasks.priority", "too many priority levels (got 99)")

    monkeypatch.setattr(solve_mod, "build", boom)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**FLEET, "tasks": [{"id": "a", "work_h": 1}]}))
    assert main(["solve", str(path), "--time-limit", "1"]) == 2
    err = capsys.readouterr().err
    assert "tasks.priority" in err and "internal error" not in err

"""The `gpuplan` command: exit codes, one-line errors, JSON on stdout."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from gpuplan import Plan
from gpuplan.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
INVALID = sorted((DATA / "invalid").glob("*.json"))
CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster.json"

# Each invalid fixture and words its one-line error must contain (the field, or the bad value).
EXPECTED_WORDS = {
    "duplicate_task_id": ["tasks[1].id", "duplicate", "'train'"],
    "gpu_share_too_large": ["tasks[0].gpu_share", "1.5"],
    "malformed_json": ["invalid JSON", "line 3"],
    "nan_value": ["matrix.cost[0][1]", "NaN"],
    "infinite_load": ["matrix.load[1][0]", "Infinity"],
    "negative_work": ["tasks[0].work_h", "-3"],
    "unknown_allowed_type": ["tasks[0].allowed_types[0]", "'H200'"],
    "negative_capacity": ["capacity[1]", "-1"],
    "ragged_cost_row": ["cost[1]", "ragged"],
    "resource_count_mismatch": ["matrix.load", "capacity", "2 resources"],
    "top_level_array": ["JSON object", "list"],
    "unknown_gpu_type_in_node": ["nodes[1].gpu_counts", "'V100'"],
    "unknown_task_key": ["tasks[1].gpu_count", "unknown key"],
    "unknown_top_level_key": ["budget_usd", "unknown key"],
    "gang_with_fractional_share": ["tasks[0]", "gpu_share must be 1", "0.5"],
    "unknown_current_gpu": ["tasks[0].current_gpus[0]", "'n9/A100/0'"],
    "unknown_forbidden_type": ["tasks[0].forbidden_types[0]", "'H100'"],
    "weighted_without_terms": ["objective", "'weighted'", "terms"],
    "negative_gang": ["tasks[0].gpus", "-1"],
    "terms_without_weighted": ["objective", "terms", "'cost'"],
    "cpu_task_with_gpu_share": ["tasks[1]", "gpu_share", "CPU-only", "0.5"],
    "cpu_task_with_gpu_memory": ["tasks[1]", "gpu_memory_gb", "CPU-only", "10"],
    "cpu_task_with_allowed_types": ["tasks[1]", "allowed_types", "CPU-only", "A100"],
    "cpu_task_with_forbidden_types": ["tasks[1]", "forbidden_types", "CPU-only", "A100"],
    "cpu_task_with_min_gpu_memory": ["tasks[1]", "min_gpu_memory_gb", "CPU-only", "40"],
    "cpu_task_with_same_type": ["tasks[1]", "same_type", "CPU-only", "True"],
    "cpu_task_with_duration_h": ["tasks[1]", "duration_h", "CPU-only", "work_h"],
    "cpu_task_with_current_gpus": ["tasks[1]", "current_gpus", "CPU-only", "[]"],
    "after_cycle": ["tasks[1].after: cycle a -> b -> c -> a"],
    "after_unknown_task": ["tasks[1].after[0]", "unknown task 'ghost'"],
    "after_self": ["tasks[0].after[0]", "'train' lists itself"],
    "after_listed_twice": ["tasks[1].after[1]", "'prep' listed twice"],
    "after_duplicated_task_id": ["tasks[1].id", "duplicate task id 'prep'"],
    "release_after_deadline": ["tasks[0].deadline_h", "2 h is not later than release_h 3 h"],
    "release_at_deadline": ["tasks[0].deadline_h", "2 h is not later than release_h 2 h"],
    "negative_release": ["tasks[0].release_h", "-1"],
    "zero_deadline": ["tasks[0].deadline_h", "greater than 0", "0"],
    "negative_due": ["tasks[0].due_h", "-2"],
    "negative_weight": ["tasks[0].weight", "-1"],
    # hostile input (docs/limits.md)
    "deep_nesting": ["deep_nesting.json", "invalid JSON", "nested more than 64 levels"],
    "integer_of_5000_digits": ["integer_of_5000_digits.json", "invalid JSON", "5000 digits"],
    "integer_beyond_2_53": ["matrix.cost[0][0]", "(30 digits) too large", "2^53"],
    "overflowing_float": ["matrix.cost[0][0]", "Infinity", "1e400"],
    "non_utf8_bytes": ["non_utf8_bytes.json", "not UTF-8", "0xff", "offset 73"],
    "gigantic_string": ["matrix.task_ids[0]", "70,000 characters", "65,536"],
    "lone_surrogate": ["matrix.task_ids[0]", "surrogate"],
    "gpu_count_billion": ["nodes[0]", "gpu_counts['H100']", "1,000,000,000 GPUs", "100,000"],
    "gpus_over_limit_in_all": ["nodes", "120,000 GPUs", "100,000"],
    "work_beyond_limit": ["tasks[0].work_h", "1e+308", "1e+15"],
    "unknown_key_with_line_break": ["tasks[0].bad\\nkey", "unknown key"],
}

# matrix with a known optimum of 5 (task 0 -> GPU 1, task 1 -> GPU 0, task 2 -> GPU 2)
OPTIMUM_5 = {
    "matrix": {"cost": [[4, 1, 3], [2, 0, 5], [3, 2, 2]], "load": [[1] * 3] * 3, "capacity": [1, 1, 1]}
}
# three unit tasks, two unit GPUs: only a solver can tell it is infeasible
INFEASIBLE = {"matrix": {"cost": [[1, 2]] * 3, "load": [[1, 1]] * 3, "capacity": [1, 1]}}
# a task with only null costs: infeasible before any solver runs
HOMELESS = {"matrix": {"cost": [[1, 2], [None, None]], "load": [[1, 1], [None, None]], "capacity": [1, 1]}}


def write(tmp_path: Path, name: str, data: object) -> str:
    """Write `data` as JSON under tmp_path and return the path as a string."""
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def stdin(monkeypatch: pytest.MonkeyPatch, data: object) -> None:
    """Make sys.stdin read `data` as JSON."""
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(data)))


# --- invalid input ---------------------------------------------------------------------------------------


def test_every_fixture_has_expectations():
    """Each invalid fixture file has expected words, and each expectation has a file."""
    assert {p.stem for p in INVALID} == set(EXPECTED_WORDS)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_input_exits_2_with_one_line(path, capsys):
    """Invalid input: exit 2, exactly one stderr line 'gpuplan: error: ...' naming the field, no traceback."""
    code = main(["solve", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gpuplan: error: ")
    for word in EXPECTED_WORDS[path.stem]:
        assert word in lines[0], (word, lines[0])
    assert "matrix: matrix" not in lines[0]  # the path is named once
    assert "Traceback" not in err + out
    assert json.loads(out)["status"] == "invalid"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_validate_rejects_invalid_input(path, capsys):
    """`validate` rejects the same fixtures with exit 2 and one error line (nothing on stdout)."""
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("gpuplan: error: ")


def test_invalid_input_with_output_file_writes_nothing(tmp_path, capsys):
    """With -o, invalid input writes neither the output file nor anything on stdout."""
    target = tmp_path / "plan.json"
    assert main(["solve", str(INVALID[0]), "-o", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("gpuplan: error: ")
    assert not target.exists()


def test_missing_file_exits_2(tmp_path, capsys):
    """A problem file that does not exist is invalid input naming the path."""
    missing = str(tmp_path / "nope.json")
    assert main(["solve", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpuplan: error: ") and "nope.json" in err and "no such file" in err


def test_invalid_json_on_stdin(monkeypatch, capsys):
    """Malformed JSON on stdin is invalid input, named <stdin>."""
    monkeypatch.setattr("sys.stdin", io.StringIO("{not json"))
    assert main(["solve", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpuplan: error: <stdin>: invalid JSON")


def test_bad_time_limit_exits_2(tmp_path, capsys):
    """A non-positive --time-limit is invalid input."""
    assert main(["solve", write(tmp_path, "m.json", OPTIMUM_5), "--time-limit", "0"]) == 2
    assert "--time-limit" in capsys.readouterr().err


def test_unknown_solver_exits_2(tmp_path, capsys):
    """An unknown --solver is a usage error: exit 2, no traceback."""
    assert main(["solve", write(tmp_path, "m.json", OPTIMUM_5), "--solver", "gurobi"]) == 2
    out, err = capsys.readouterr()
    assert "gurobi" in err and "Traceback" not in err
    assert out == ""


def test_missing_subcommand_exits_2(capsys):
    """No subcommand is a usage error."""
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_help_exits_0(capsys):
    """--help prints usage and exits 0."""
    assert main(["--help"]) == 0
    assert "solve" in capsys.readouterr().out


# --- solve -------------------------------------------------------------------------------------------------


def test_solve_matrix_from_stdin(monkeypatch, capsys):
    """A matrix on stdin: exit 0, stdout is only the plan JSON, optimal with the known optimum."""
    stdin(monkeypatch, OPTIMUM_5)
    code = main(["solve", "-", "--time-limit", "5"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)  # the whole of stdout parses: nothing else is printed there
    assert data["status"] == "optimal"
    assert data["objective"] == 5
    assert {a["task"]: a["gpus"] for a in data["assignments"]} == {"0": ["1"], "1": ["0"], "2": ["2"]}
    Plan.model_validate(data)


@pytest.mark.parametrize("solver", ["greedy", "cpsat", "milp"])
def test_solve_with_each_solver(monkeypatch, capsys, solver):
    """--solver picks the backend, recorded in the plan."""
    stdin(monkeypatch, OPTIMUM_5)
    assert main(["solve", "-", "--solver", solver, "--time-limit", "5", "--workers", "1", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["solver_requested"] == solver
    assert data["objective"] >= 5


@pytest.mark.parametrize(
    ("problem", "solver"),
    [
        (INFEASIBLE, None),
        (INFEASIBLE, "cpsat"),
        (INFEASIBLE, "milp"),
        (HOMELESS, None),
    ],
)
def test_solve_infeasible_exits_3(monkeypatch, capsys, problem, solver):
    """Proven infeasible (by a solver, or by presolve for a homeless task): exit 3, plan JSON on stdout."""
    stdin(monkeypatch, problem)
    argv = ["solve", "-", "--time-limit", "5"] + (["--solver", solver] if solver else [])
    code = main(argv)
    out, _ = capsys.readouterr()
    assert code == 3
    data = json.loads(out)
    assert data["status"] == "infeasible"
    assert data["objective"] is None and data["unassigned"]


def test_greedy_without_solution_exits_4(monkeypatch, capsys):
    """No solution found (greedy on an infeasible instance): exit 4, plan JSON status unknown."""
    stdin(monkeypatch, INFEASIBLE)
    assert main(["solve", "-", "--solver", "greedy"]) == 4
    assert json.loads(capsys.readouterr().out)["status"] == "unknown"


def test_solve_output_file(tmp_path, capsys):
    """-o writes the plan JSON to the file (creating folders) and nothing to stdout."""
    target = tmp_path / "out" / "plan.json"
    code = main(["solve", write(tmp_path, "m.json", OPTIMUM_5), "-o", str(target), "--time-limit", "5"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out == ""
    plan = Plan.model_validate_json(target.read_text())
    assert plan.status == "optimal" and plan.objective == 5


def test_solve_summary_goes_to_stderr(monkeypatch, capsys):
    """--summary prints the readable summary on stderr and keeps stdout pure JSON."""
    stdin(monkeypatch, OPTIMUM_5)
    assert main(["solve", "-", "--summary", "--time-limit", "5"]) == 0
    out, err = capsys.readouterr()
    json.loads(out)
    assert "status    optimal" in err


def test_verbose_logs_to_stderr(monkeypatch, capsys):
    """-v does not pollute stdout."""
    stdin(monkeypatch, OPTIMUM_5)
    assert main(["-v", "solve", "-", "--time-limit", "5"]) == 0
    json.loads(capsys.readouterr().out)


def test_solve_cluster_example(tmp_path, capsys):
    """examples/cluster.json solves from the command line."""
    target = tmp_path / "plan.json"
    assert main(["solve", str(CLUSTER), "-o", str(target), "--time-limit", "5"]) == 0
    plan = Plan.model_validate_json(target.read_text())
    assert plan.is_feasible
    assert any(u.task == "llm-serve-xl" for u in plan.unassigned)


# --- validate, schema, show ---------------------------------------------------------------------------------


def test_validate_problem(capsys):
    """`validate` on a good problem exits 0 and reports what it holds."""
    assert main(["validate", str(CLUSTER)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: valid problem (a GAP):")
    assert "34 tasks" in out and "14 GPUs" in out
    assert "warning: 1 task(s) fit nowhere: llm-serve-xl" in out


def test_validate_matrix(tmp_path, capsys):
    """`validate` on a matrix exits 0 and names it a matrix."""
    assert main(["validate", write(tmp_path, "m.json", OPTIMUM_5)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: valid matrix: 3 tasks, 3 GPUs, 9 eligible pairs")


@pytest.mark.parametrize("which", ["problem", "plan", "matrix"])
def test_schema(capsys, which):
    """`schema problem|plan|matrix` prints a JSON Schema."""
    assert main(["schema", which]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and schema["properties"]


def test_schema_unknown_exits_2(capsys):
    """`schema` of an unknown thing is a usage error."""
    assert main(["schema", "fleet"]) == 2


def test_show_prints_summary(tmp_path, capsys):
    """`show` prints a readable summary of a plan file."""
    target = tmp_path / "plan.json"
    assert main(["solve", str(CLUSTER), "-o", str(target), "--solver", "greedy"]) == 0
    capsys.readouterr()
    assert main(["show", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("status    feasible")
    assert "objective" in out and "unassigned:" in out
    assert "llm-serve-xl: needs 96 GB" in out


def test_show_rejects_non_plan(capsys):
    """`show` on a file that is not a plan is invalid input (exit 2, one line)."""
    assert main(["show", str(CLUSTER)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("gpuplan: error: ")


def test_broken_pipe_is_quiet(tmp_path, monkeypatch, capsys):
    """A reader that closes stdout early (`| head`) ends the command without a traceback or message."""
    plan = tmp_path / "plan.json"
    assert main(["solve", str(CLUSTER), "-o", str(plan), "--time-limit", "5"]) == 0
    capsys.readouterr()

    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            return os.open(os.devnull, os.O_WRONLY)

    monkeypatch.setattr("sys.stdout", Closed())
    assert main(["show", str(plan)]) == 1
    assert "Traceback" not in capsys.readouterr().err


# --- the fleet model through the command line -------------------------------------------------------

FLEET_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.json"


def test_fleet_example_plan_on_stdout(capsys):
    """The fleet example: exit 0, a gang listed with all its GPUs on one node."""
    assert main(["solve", str(FLEET_EXAMPLE), "--time-limit", "5", "--workers", "1"]) == 0
    plan = Plan.model_validate_json(capsys.readouterr().out)
    gang = next(a for a in plan.assignments if a.task == "pretrain")
    assert len(gang.gpus) == 4 and all(g.startswith(f"{gang.node}/") for g in gang.gpus)


def test_fleet_infeasible_exits_3_with_reasons(tmp_path, capsys):
    """Three replicas that must spread over two nodes: proven infeasible, the plan still printed."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"A": 2}} for i in range(2)],
        "tasks": [{"id": f"r{i}", "work_h": 1, "gpu_share": 0.5, "anti_affinity": "svc"} for i in range(3)],
    }
    assert main(["solve", write(tmp_path, "p.json", data), "--time-limit", "5", "--workers", "1"]) == 3
    plan = Plan.model_validate_json(capsys.readouterr().out)
    assert plan.status.value == "infeasible" and len(plan.unassigned) == 3
    assert all("proven infeasible" in u.reason for u in plan.unassigned)


def test_milp_on_a_fleet_problem_is_invalid_input(capsys):
    assert main(["solve", str(FLEET_EXAMPLE), "--solver", "milp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "milp" in err


SCHEDULED = {
    "gpu_types": [{"name": "A100", "memory_gb": 80}],
    "nodes": [{"id": "n1", "gpu_counts": {"A100": 2}}],
    "tasks": [{"id": "prep", "work_h": 1}, {"id": "train", "work_h": 2, "after": ["prep"]}],
}


def test_scheduled_problem_validates_and_solves_with_times(tmp_path, capsys):
    """`validate` says a problem is scheduled and why; `solve` gives every task its start and end."""
    path = write(tmp_path, "scheduled.json", SCHEDULED)
    assert main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "(scheduled)" in out and "plans say when (from tasks[1].after)" in out
    assert main(["solve", path]) == 0
    plan = json.loads(capsys.readouterr().out)
    times = {a["task"]: (a["start_h"], a["end_h"]) for a in plan["assignments"]}
    assert times["train"][0] >= times["prep"][1] == pytest.approx(1.0)


def test_python_dash_m_reports_subcommand_input_errors_as_invalid(tmp_path):
    """Regression: under `python -m gpuplan.cli` the executor's InputError (from gpuplan.cli) was not
    the __main__ copy's class, so bad input exited 1 as an internal error instead of 2."""
    import subprocess
    import sys

    missing = str(tmp_path / "missing.json")
    done = subprocess.run(
        [sys.executable, "-m", "gpuplan.cli", "run", missing, "--problem", missing, "--commands", missing],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("gpuplan: error:") and "missing.json" in done.stderr


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--seed", "99999999999", ["--seed", "2147483647", "99999999999"]),
        ("--seed", "-1", ["--seed", "-1"]),
        ("--workers", "0", ["--workers", "1024", "0"]),
        ("--time-limit", "nan", ["--time-limit", "finite", "nan"]),
        ("--time-limit", "inf", ["--time-limit", "finite", "inf"]),
    ],
)
def test_settings_out_of_range_exit_2(tmp_path, capsys, flag, value, words):
    """A seed beyond 32 bits (it crashed CP-SAT), no workers, a time limit that is not a finite number:
    exit 2 naming the flag."""
    assert main(["solve", write(tmp_path, "m.json", OPTIMUM_5), flag, value]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    for word in words:
        assert word in err, (word, err)


def test_seed_in_the_problem_options_is_bounded_too(tmp_path, capsys):
    """options.seed past 32 bits is refused when the problem is read."""
    data = json.loads(CLUSTER.read_text())
    data["options"] = {"seed": 2**40}
    assert main(["solve", write(tmp_path, "p.json", data), "--solver", "cpsat"]) == 2
    assert "options.seed" in capsys.readouterr().err

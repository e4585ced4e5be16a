"""The executor's inputs and commands: sim fleet, commands file, CLI validation, inventory, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from exec_helpers import DATA, commands, load_problem, run_args, sim_fleet, solve

from gpuplan.cli import main
from gpuplan.executor.replan import build_problem
from gpuplan.executor.sim import SimulatedBackend
from gpuplan.models import Problem


def test_sim_readings_follow_the_script() -> None:
    fleet = sim_fleet(
        [
            {"at_s": 1.0, "gpu": "g1", "temperature_c": 95, "utilization": 80},
            {"at_s": 2.0, "gpu": "g2", "fail": True},
            {"at_s": 3.0, "gpu": "g3", "ecc_errors": 4},
        ]
    )
    now = time.time()
    at = {t: {r.gpu: r for r in SimulatedBackend(fleet, epoch=now - t).read()} for t in (0.5, 1.5, 2.5, 3.5)}
    assert at[0.5]["g1"].temperature_c == 40 and at[1.5]["g1"].temperature_c == 95
    assert at[1.5]["g1"].utilization == 80
    assert at[1.5]["g2"].healthy and not at[2.5]["g2"].healthy
    assert at[2.5]["g3"].ecc_errors == 0 and at[3.5]["g3"].ecc_errors == 4


def _write_inputs(tmp_path: Path, out: Path, spec_data: dict | None = None) -> list[str]:
    problem = load_problem()
    plan = solve(problem)
    (tmp_path / "problem.json").write_text(problem.model_dump_json())
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    data = spec_data if spec_data is not None else commands(plan, out, sleep=0.05).model_dump()
    (tmp_path / "commands.json").write_text(json.dumps(data))
    return run_args(tmp_path, "-q")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tasks": {"t0": {"argv": "python x.py"}}}, "commands.tasks.t0.argv: Input should be a valid list"),
        ({"tasks": {"t0": {"argv": []}}}, "commands.tasks.t0.argv: List should have at least 1 item"),
        (
            {"tasks": {"t0": {"argv": ["x"], "shell": True}}},
            "commands.tasks.t0.shell: unknown key (value true)",
        ),
        ({"tasks": {"t0": {"argv": ["x"], "max_retries": -1}}}, "commands.tasks.t0.max_retries"),
        (
            {"tasks": {"t0": {"argv": ["x"], "env": {"CUDA_VISIBLE_DEVICES": "0"}}}},
            "CUDA_VISIBLE_DEVICES is set by the executor",
        ),
        ({"tasks": {"t0": {"argv": ["x"]}}}, "commands.tasks: no command for task 't1'"),
    ],
)
def test_bad_commands_exit_2_with_one_line(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str], spec: dict, message: str
) -> None:
    assert main(_write_inputs(tmp_path, out, spec)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_bad_sim_file_exits_2_naming_the_field(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _write_inputs(tmp_path, out)
    sim = json.loads((DATA / "sim4.json").read_text())
    sim["script"] = [{"at_s": 1, "gpu": "g9", "fail": True}]
    (tmp_path / "sim.json").write_text(json.dumps(sim))
    args[args.index("--devices") + 1] = str(tmp_path / "sim.json")
    assert main(args) == 2
    assert "script[0].gpu: unknown GPU 'g9'" in capsys.readouterr().err


def test_cli_run_status_and_inventory(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _write_inputs(tmp_path, out)
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"] == {"done": 8} and result["state"] == "finished"
    assert main(["status", "--state-dir", str(tmp_path / "state")]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"done": 8} and status["leases"] == {"released": 8}
    assert status["events"][-1]["kind"] == "finish"
    # the same command again resumes a finished run: nothing runs twice
    assert main(args) == 0
    capsys.readouterr()
    assert all(len((out / f"t{k}.done").read_text().splitlines()) == 1 for k in range(8))
    assert main(["inventory", "--devices", str(DATA / "sim4.json")]) == 0
    inv = Problem.model_validate(json.loads(capsys.readouterr().out))
    assert [g.id for _, g in inv.all_gpus()] == ["g0", "g1", "g2", "g3"]
    assert main(["status", "--state-dir", str(tmp_path / "nothing")]) == 2


def test_gpuplan_stop_stops_every_task_and_leaves_them_queued(tmp_path: Path, out: Path) -> None:
    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out, sleep=30)
    (tmp_path / "problem.json").write_text(problem.model_dump_json())
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    (tmp_path / "commands.json").write_text(spec.model_dump_json())
    cli = [sys.executable, "-m", "gpuplan.cli"]
    args = run_args(tmp_path, "--grace", "0.5")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([*cli, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(list(out.glob("*.starts"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop = subprocess.run(
        [*cli, "stop", "--state-dir", str(tmp_path / "state")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert stop.returncode == 0, stop.stderr
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 4, stderr[-1000:]
    assert json.loads(stdout)["counts"] == {"queued": 8}
    assert "stop " in stderr  # progress went to stderr
    assert not list(out.glob("*.done"))


def test_replan_problem_marks_gpus_and_pins_running_tasks() -> None:
    problem = load_problem()
    p = build_problem(
        problem,
        running={"t0": ["g0"]},
        pending=["t1"],
        excluded={"g2"},
        migration_cost=500,
        optional_pending=True,
    )
    assert [t.id for t in p.tasks] == ["t0", "t1"]
    assert p.tasks[0].current_gpus == ["g0"] and p.tasks[0].migration_cost == 500 and not p.tasks[0].optional
    assert p.tasks[1].optional and p.tasks[1].current_gpus is None
    health = {g.id: g.healthy for _, g in p.all_gpus()}
    assert health == {"g0": True, "g1": True, "g2": False, "g3": True}
    counted = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 10}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 2}}],
            "tasks": [{"id": "x", "work_h": 1}],
        }
    )
    q = build_problem(counted, running={}, pending=["x"], excluded={"n/A/1"}, migration_cost=1)
    assert {g.id: g.healthy for _, g in q.all_gpus()} == {"n/A/0": True, "n/A/1": False}

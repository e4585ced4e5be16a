"""Crash safety: a killed executor restarts and finishes the plan with every task run exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from exec_helpers import commands, load_problem, make_executor, records, run, run_args, sim_fleet, solve

from gpuplan.executor import Executor, launcher


class Crash(BaseException):
    """Stands for the executor dying at a precise point (nothing after it runs)."""


def _cli(tmp_path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gpuplan.cli",
        *run_args(tmp_path, "--sample-interval", "0.05", "--grace", "1", *extra),
    ]


def test_sigkilled_executor_restarts_and_completes_every_task_exactly_once(tmp_path: Path, out: Path) -> None:
    # whole-GPU tasks within a horizon: two waves on four GPUs, so the kill lands mid-plan
    problem = load_problem(horizon_h=4, task={"gpu_share": 1.0})
    plan = solve(problem)
    spec = commands(plan, out, sleep=1.0)
    (tmp_path / "problem.json").write_text(problem.model_dump_json())
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    (tmp_path / "commands.json").write_text(spec.model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.Popen(
        _cli(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    deadline = time.monotonic() + 20
    while len(list(out.glob("*.starts"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(list(out.glob("*.starts"))) >= 4, first.stderr.read1().decode() if first.stderr else ""
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    started_before = {p.stem for p in out.glob("*.starts")}
    assert len(started_before) < 8  # killed mid-plan
    time.sleep(1.3)  # the first wave ends while no executor runs: its wrappers record the exit codes
    second = subprocess.run(_cli(tmp_path), env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    result = json.loads(second.stdout)
    assert result["counts"] == {"done": 8}
    for a in plan.assignments:
        assert len(records(out, a.task, "starts")) == 1, f"{a.task} started twice"
        assert len(records(out, a.task, "done")) == 1, (
            f"{a.task} completed {len(records(out, a.task, 'done'))}x"
        )
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 8
    assert {r[0] for r in db.execute("SELECT state FROM attempts")} == {"succeeded"}
    kinds = [r[0] for r in db.execute("SELECT kind FROM events")]
    assert "resume" in kinds
    # gpuplan status reads the finished run
    status = subprocess.run(
        [sys.executable, "-m", "gpuplan.cli", "status", "--state-dir", str(tmp_path / "state")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert status.returncode == 0 and json.loads(status.stdout)["counts"] == {"done": 8}


def test_crash_between_starting_record_and_spawn_cancels_the_attempt(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out, sleep=0.1)
    real_spawn = launcher.Spawner.spawn

    def crash(*args: object, **kwargs: object) -> object:
        raise Crash

    monkeypatch.setattr(launcher.Spawner, "spawn", crash)
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet())
    with pytest.raises(Crash):
        ex.run()
    ex.close()
    monkeypatch.setattr(launcher.Spawner, "spawn", real_spawn)
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 8}
    first = plan.assignments[0].task
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    states = [r[0] for r in db.execute("SELECT state FROM attempts WHERE task=? ORDER BY n", (first,))]
    assert states == ["cancelled", "succeeded"]
    assert len(records(out, first, "starts")) == 1


def test_crash_after_spawn_before_running_record_adopts_the_process(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out, sleep=0.5)

    def crash(self: Executor, a: object) -> None:
        raise Crash

    real = Executor._mark_running
    monkeypatch.setattr(Executor, "_mark_running", crash)
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet())
    with pytest.raises(Crash):
        ex.run()
    ex.close()
    monkeypatch.setattr(Executor, "_mark_running", real)
    first = plan.assignments[0].task
    deadline = time.monotonic() + 10
    while not records(out, first, "starts") and time.monotonic() < deadline:
        time.sleep(0.01)  # the wrapper claimed the attempt and started the task: it must be adopted
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 8}
    assert len(records(out, first, "starts")) == 1 and len(records(out, first, "done")) == 1
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    assert [r[0] for r in db.execute("SELECT state FROM attempts WHERE task=?", (first,))] == ["succeeded"]
    kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE task=?", (first,))]
    assert "adopt" in kinds


def test_second_executor_on_the_same_state_dir_is_refused(tmp_path: Path, out: Path) -> None:
    from gpuplan.executor import ExecutorInputError

    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out)
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet())
    try:
        with pytest.raises(ExecutorInputError, match="another executor"):
            make_executor(tmp_path, problem, plan, spec, sim_fleet())
    finally:
        ex.close()


def test_claim_is_decided_once(tmp_path: Path) -> None:
    d = tmp_path / "attempt"
    assert launcher.cancel_if_unclaimed(d) is True
    assert launcher.cancel_if_unclaimed(d) is False
    # a wrapper arriving after the cancellation runs nothing
    marker = tmp_path / "ran"
    rc = subprocess.run(
        [sys.executable, "-I", launcher.WRAPPER, str(d), str(tmp_path / "log"), "--", "touch", str(marker)],
        timeout=30,
    ).returncode
    assert rc == 0 and not marker.exists() and launcher.read_exit(d) is None

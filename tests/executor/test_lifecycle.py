"""Lifecycle on the simulated fleet with real child processes: start, finish, retry, fail, leases."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

from exec_helpers import FAST, commands, load_problem, make_executor, records, run, sim_fleet, solve


def test_eight_tasks_on_four_gpus_complete_with_their_cuda_visible_devices(
    tmp_path: Path, out: Path, uuids: dict[str, str]
) -> None:
    problem = load_problem()
    plan = solve(problem)
    assert len(plan.assignments) == 8 and len({g for a in plan.assignments for g in a.gpus}) == 4
    # each task checks its own CUDA_VISIBLE_DEVICES against its plan GPUs' UUIDs (exit 3 otherwise)
    expect = {a.task: {"--expect": ",".join(uuids[g] for g in a.gpus)} for a in plan.assignments}
    spec = commands(plan, out, sleep=0.3, **expect)
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.exit_code == 0, result.tasks
    assert result.counts == {"done": 8}
    for a in plan.assignments:
        done = records(out, a.task, "done")
        assert len(done) == 1 and len(records(out, a.task, "starts")) == 1
        assert done[0]["cvd"] == ",".join(uuids[g] for g in a.gpus)
        assert result.tasks[a.task]["attempts"] == 1
    state = tmp_path / "state"
    db = sqlite3.connect(state / "journal.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # one lease per GPU per attempt, all released; exit codes recorded
    assert db.execute("SELECT state, COUNT(*) FROM leases GROUP BY state").fetchall() == [("released", 8)]
    assert {r[0] for r in db.execute("SELECT exit_code FROM attempts")} == {0}
    assert {r[0] for r in db.execute("SELECT state FROM attempts")} == {"succeeded"}
    # each attempt has its own log file, and metrics were sampled as JSON lines
    logs = sorted(p.name for p in (state / "logs").iterdir())
    assert len(logs) == 8
    metrics = [json.loads(line) for line in (state / "metrics.jsonl").read_text().splitlines()]
    assert metrics and {m["gpu"] for m in metrics} == {"g0", "g1", "g2", "g3"}
    assert all("temperature_c" in m for m in metrics)


def test_wrong_cuda_visible_devices_is_caught_by_the_task(tmp_path: Path, out: Path) -> None:
    """The --expect check can fail: a task told to expect another GPU fails (so the check above is real)."""
    problem = load_problem()
    plan = solve(problem)
    first = plan.assignments[0].task
    spec = commands(plan, out, sleep=0.05, **{first: {"--expect": "GPU-not-this-one", "max_retries": 0}})
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.tasks[first]["state"] == "failed"
    assert result.exit_code == 3


def test_a_task_that_always_fails_ends_failed_after_its_retries(tmp_path: Path, out: Path) -> None:
    problem = load_problem()
    plan = solve(problem)
    bad = plan.assignments[3].task
    spec = commands(plan, out, sleep=0.05, **{bad: {"--fail": 7, "max_retries": 2}})
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.exit_code == 3
    assert result.counts == {"done": 7, "failed": 1}
    assert result.tasks[bad]["state"] == "failed"
    assert result.tasks[bad]["attempts"] == 3 and result.tasks[bad]["failures"] == 3
    assert len(records(out, bad, "starts")) == 3 and records(out, bad, "done") == []
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    codes = [r[0] for r in db.execute("SELECT exit_code FROM attempts WHERE task=? ORDER BY n", (bad,))]
    assert codes == [7, 7, 7]
    kinds = [r[0] for r in db.execute("SELECT kind FROM events WHERE task=? ORDER BY id", (bad,))]
    assert kinds.count("retry") == 2 and kinds[-1] == "failed"
    leases = {r[0] for r in db.execute("SELECT state FROM leases WHERE task=?", (bad,))}
    assert leases == {"failed"}


def test_tasks_sharing_no_room_run_one_after_another(tmp_path: Path, out: Path) -> None:
    """Whole-GPU tasks planned on one GPU within a horizon start only when the GPU has room."""
    problem = load_problem(horizon_h=4, task={"gpu_share": 1.0})
    plan = solve(problem)
    per_gpu: dict[str, list[str]] = {}
    for a in plan.assignments:
        per_gpu.setdefault(a.gpus[0], []).append(a.task)
    assert max(len(v) for v in per_gpu.values()) >= 2
    spec = commands(plan, out, sleep=0.2)
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 8}
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    for tasks in per_gpu.values():
        spans = sorted(
            db.execute(
                f"SELECT t_start, t_end FROM attempts WHERE task IN ({','.join('?' * len(tasks))})", tasks
            ).fetchall()
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, "two whole-GPU tasks overlapped on one GPU"


def test_plan_gpu_not_on_this_machine_is_refused(tmp_path: Path, out: Path) -> None:
    import pytest

    from gpuplan.executor import ExecutorInputError
    from gpuplan.executor.spec import SimFleet

    problem = load_problem()
    plan = solve(problem)
    fleet = sim_fleet()
    three = SimFleet.model_validate({**fleet.model_dump(), "gpus": fleet.model_dump()["gpus"][:3]})
    with pytest.raises(ExecutorInputError, match=r"gpus\[0\]: GPU 'g3' is not on this machine"):
        make_executor(tmp_path, problem, plan, commands(plan, out), three, FAST)

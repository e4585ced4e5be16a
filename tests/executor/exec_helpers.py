"""Helpers for executor tests: the 4-GPU simulated fleet, plans, commands and runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gpuplan
from gpuplan.executor import Executor, RunResult, RunSpec, Settings, launcher
from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sim import SimulatedBackend, load_sim
from gpuplan.executor.spec import SimFleet

DATA = Path(__file__).resolve().parents[1] / "data" / "executor"
TASKPROG = str(Path(__file__).with_name("taskprog.py"))

FAST = Settings(sample_interval_s=0.05, poll_interval_s=0.02, grace_s=1.0, replan_time_limit_s=2.0, workers=1)


def load_problem(name: str = "problem4.json", **changes: Any) -> gpuplan.Problem:
    """A problem fixture, with top-level fields or every task's fields replaced."""
    data = json.loads((DATA / name).read_text())
    task_changes = changes.pop("task", {})
    data.update(changes)
    for t in data["tasks"]:
        t.update(task_changes)
    return gpuplan.Problem.model_validate(data)


def sim_fleet(script: list[dict[str, Any]] | None = None) -> SimFleet:
    """The 4-GPU simulated fleet with a script of timed events."""
    fleet = load_sim(DATA / "sim4.json")
    return SimFleet.model_validate({**fleet.model_dump(), "script": script or []})


def solve(problem: gpuplan.Problem) -> gpuplan.Plan:
    """A verified plan from the real optimizer (greedy: instant)."""
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5, workers=1)
    assert plan.status.has_solution
    return plan


def commands(plan: gpuplan.Plan, out: Path, *, sleep: float = 0.3, **extra: Any) -> RunSpec:
    """Every planned task runs taskprog.py writing into `out`; `extra` maps task id -> args/fields."""
    tasks = {}
    for a in plan.assignments:
        argv = [sys.executable, TASKPROG, str(out), "--sleep", str(sleep)]
        fields: dict[str, Any] = {}
        for key, value in extra.get(a.task, {}).items():
            if key.startswith("--"):
                argv += [key, str(value)]
            else:
                fields[key] = value
        tasks[a.task] = {"argv": argv, **fields}
    return RunSpec.model_validate({"tasks": tasks})


def make_executor(
    tmp_path: Path,
    problem: gpuplan.Problem,
    plan: gpuplan.Plan,
    spec: RunSpec,
    fleet: SimFleet,
    settings: Settings = FAST,
) -> Executor:
    """An Executor on the simulated fleet with its state in tmp_path/state."""
    return Executor(
        tmp_path / "state",
        problem=problem,
        plan=plan,
        spec=spec,
        settings=settings,
        backend_factory=lambda epoch: SimulatedBackend(fleet, epoch=epoch),
        cwd=str(tmp_path),
    )


def run(ex: Executor, max_s: float = 30.0) -> RunResult:
    """Run to the end and close."""
    try:
        return ex.run(max_s=max_s)
    finally:
        ex.close()


def records(out: Path, task: str, kind: str) -> list[dict[str, Any]]:
    """The JSON lines a task wrote on start ('starts') or on success ('done')."""
    path = out / f"{task}.{kind}"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


Factory = Callable[..., Executor]


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    """`gpuplan run` arguments for plan.json, problem.json and commands.json in `tmp_path`, on the
    simulated 4-GPU fleet, with state in tmp_path/state."""
    return [
        "run",
        str(tmp_path / "plan.json"),
        "--problem",
        str(tmp_path / "problem.json"),
        "--commands",
        str(tmp_path / "commands.json"),
        "--devices",
        str(DATA / "sim4.json"),
        "--state-dir",
        str(tmp_path / "state"),
        *extra,
    ]


def sh_request(root: Path, name: str, script: str) -> LaunchRequest:
    """A launch of `sh -c script` with its attempt dir and log under `root`."""
    return LaunchRequest(
        str(root / "attempts" / name), str(root / "logs" / f"{name}.log"), ["sh", "-c", script], {}, str(root)
    )


def count_exit_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The attempt dirs whose exit file is read from now on (`launcher.read_exit`), in order."""
    reads: list[str] = []
    real = launcher.read_exit

    def counted(d: Path) -> Any:
        reads.append(str(d))
        return real(d)

    monkeypatch.setattr(launcher, "read_exit", counted)
    return reads

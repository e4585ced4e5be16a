"""A small real run for the report tests, and a headless Chromium to open the page in.

The browser is the system's `chromium` package: installed here with apt-get when it is missing and
the tests run as root (set GPUPLAN_NO_BROWSER_INSTALL=1 to forbid that); the browser tests are
skipped, saying why, when it cannot be had.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import gpuplan
from gpuplan.executor import Executor, RunSpec, Settings
from gpuplan.executor.sim import SimulatedBackend
from gpuplan.executor.spec import SimFleet

SIM_TASK = Path(__file__).resolve().parents[2] / "benchmarks" / "sim_task.py"
HOUR_S = 0.5
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _find_browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, installed from the system's packages when missing."""
    found = _find_browser()
    if found:
        return found
    why = "no Chromium on this machine"
    if os.environ.get("GPUPLAN_NO_BROWSER_INSTALL"):
        pytest.skip(f"{why} and GPUPLAN_NO_BROWSER_INSTALL is set: apt-get install -y chromium")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{why}, and apt-get cannot install it here (needs root): apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    for cmds in ([install], [["apt-get", "update", "-q"], install]):  # the package lists may be stale
        for cmd in cmds:
            subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
        found = _find_browser()
        if found:
            return found
    pytest.skip(f"{why}, and `apt-get install -y chromium` did not provide one")


def _problem() -> dict:
    return {
        "gpu_types": [
            {"name": "fast", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 3.0, "power_w": 400},
            {"name": "slow", "memory_gb": 24, "speed": 1.0, "cost_per_hour": 1.0, "power_w": 100},
        ],
        "nodes": [
            {
                "id": "sim0",
                "gpus": [
                    {"id": "f0", "type": "fast"},
                    {"id": "f1", "type": "fast"},
                    {"id": "s0", "type": "slow"},
                ],
            }
        ],
        "temperature_limit_c": 85,
        "tasks": [{"id": f"job-{k}", "group": "job", "work_h": 2.0} for k in range(6)]
        + [{"id": "<odd & id>", "work_h": 1.0}],
        "objective": {"kind": "makespan"},
    }


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scheduled plan run on a simulated fleet whose 'fast' GPUs are 30% slower than declared and
    where GPU f1 fails mid-run (its task moves): (plan file, state directory)."""
    work = tmp_path_factory.mktemp("run")
    problem = gpuplan.Problem.model_validate(_problem())
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5, workers=1)
    assert plan.status.has_solution
    (work / "plan.json").write_text(plan.model_dump_json())
    fleet = {
        "node": "sim0",
        "gpus": [
            {"id": g, "uuid": f"GPU-rep-{k}", "model": t, "memory_gb": 40, "utilization": 80.0, "power_w": w}
            for k, (g, t, w) in enumerate(
                (("f0", "fast", 300.0), ("f1", "fast", 300.0), ("s0", "slow", 90.0))
            )
        ],
        "script": [{"at_s": 0.6, "gpu": "f1", "fail": True}],
    }
    (work / "sim.json").write_text(json.dumps(fleet))
    (work / "truth.json").write_text(json.dumps({"speeds": {"fast": 1.4, "slow": 1.0}, "noise": 0.0}))
    spec = RunSpec.model_validate(
        {
            "tasks": {
                a.task: {
                    "argv": [
                        sys.executable,
                        "-I",
                        str(SIM_TASK),
                        "--work-h",
                        str(problem.tasks[[t.id for t in problem.tasks].index(a.task)].work_h),
                        "--sim",
                        str(work / "sim.json"),
                        "--truth",
                        str(work / "truth.json"),
                        "--hour-s",
                        str(HOUR_S),
                    ]
                }
                for a in plan.assignments
            }
        }
    )
    settings = Settings(
        sample_interval_s=0.05,
        poll_interval_s=0.02,
        grace_s=1.0,
        replan_time_limit_s=2.0,
        replan_solver="greedy",
        workers=1,
        hour_s=HOUR_S,
    )
    ex = Executor(
        work / "state",
        problem=problem,
        plan=plan,
        spec=spec,
        settings=settings,
        backend_factory=lambda epoch: SimulatedBackend(SimFleet.model_validate(fleet), epoch=epoch),
        cwd=str(work),
    )
    try:
        result = ex.run(max_s=60)
    finally:
        ex.close()
    assert result.exit_code == 0, result
    return work / "plan.json", work / "state"

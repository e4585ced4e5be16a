"""`--ray` without a cluster: a missing package or an unreachable cluster is one line and exit 2,
fast; and the run's time scale (`--hour-seconds`) is the journaled one on resume."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from exec_helpers import FAST, commands, load_problem, make_executor, run, sim_fleet, solve

from gpuplan.executor import ExecutorInputError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _run_args(tmp_path: Path, address: str | None) -> list[str]:
    """`gpuplan run --ray [ADDRESS]` on a small plan written to `tmp_path`."""
    problem = load_problem()
    plan = solve(problem)
    out = tmp_path / "out"
    out.mkdir()
    for name, data in (("problem", problem), ("plan", plan), ("commands", commands(plan, out, sleep=0.05))):
        (tmp_path / f"{name}.json").write_text(data.model_dump_json())
    args = ["run", str(tmp_path / "plan.json"), "--problem", str(tmp_path / "problem.json")]
    args += ["--commands", str(tmp_path / "commands.json"), "--state-dir", str(tmp_path / "state"), "-q"]
    return [*args, "--ray", *([address] if address else [])]


def _cli(args: list[str], *, hide_ray: bool = False) -> subprocess.CompletedProcess[str]:
    """The gpuplan command in a subprocess; `hide_ray` makes `import ray` fail as without the package."""
    boot = "sys.modules['ray'] = None; " if hide_ray else ""
    code = f"import sys; {boot}from gpuplan.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=ENV, capture_output=True, text=True, timeout=60
    )


def test_without_the_ray_package_run_and_inventory_say_how_to_install_it(tmp_path: Path) -> None:
    for args in (_run_args(tmp_path, None), ["inventory", "--ray"]):
        done = _cli(args, hide_ray=True)
        assert done.returncode == 2, done.stderr
        assert (
            done.stderr.strip() == "gpuplan: error: --ray: Ray is not installed: pip install 'gpuplan[ray]'"
        )
    assert not (tmp_path / "state").exists()


def test_an_unreachable_cluster_is_one_line_and_exit_2_within_30_s(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="needs the ray package: pip install 'gpuplan[ray]'")
    started = time.monotonic()
    done = _cli(_run_args(tmp_path, "127.0.0.1:9"))
    assert time.monotonic() - started < 30
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpuplan: error: --ray: no Ray cluster at 127.0.0.1:9"), (
        lines
    )


def test_a_resumed_run_keeps_its_journaled_hour_seconds(tmp_path: Path) -> None:
    """Planned hours keep the time scale the run started with: left out on resume, the journaled
    value is used; a different one is refused."""
    problem = load_problem()
    plan = solve(problem)
    out = tmp_path / "out"
    out.mkdir()
    spec = commands(plan, out, sleep=0.05)
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet(), FAST.model_copy(update={"hour_s": 2.0}))
    ex.close()  # recorded, not run: the next executor resumes it
    with pytest.raises(ExecutorInputError, match="--hour-seconds: 5 differs from the 2 this run was started"):
        make_executor(tmp_path, problem, plan, spec, sim_fleet(), FAST.model_copy(update={"hour_s": 5.0}))
    again = make_executor(tmp_path, problem, plan, spec, sim_fleet())  # FAST: the default 3600
    assert again.resumed and again.settings.hour_s == 2.0
    assert run(again).counts == {"done": 8}

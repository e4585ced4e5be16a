"""A plan with a CPU-only task (`gpus: []`) runs to the end: the task starts with no GPU visible."""

from __future__ import annotations

from pathlib import Path

from exec_helpers import commands, load_problem, make_executor, records, run, sim_fleet, solve

import gpuplan


def test_a_cpu_only_task_starts_with_no_gpu_and_the_run_finishes(tmp_path: Path, out: Path) -> None:
    """The executor used to take the empty GPU list for 'not placed yet' and re-plan forever."""
    base = load_problem()
    data = base.model_dump()
    data["nodes"][0]["cpu_cores"] = 8
    data["tasks"] = [data["tasks"][0], {"id": "etl", "gpus": 0, "cpu_cores": 2, "work_h": 1}]
    problem = gpuplan.Problem.model_validate(data)
    plan = solve(problem)
    assert {a.task: a.gpus for a in plan.assignments}["etl"] == []
    spec = commands(plan, out, sleep=0.2, etl={"--expect": ""})
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()), max_s=20)
    assert result.exit_code == 0, result.tasks
    assert result.counts == {"done": 2}
    assert records(out, "etl", "done")[0]["cvd"] == ""

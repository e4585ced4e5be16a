"""`gpuplan show` on a scheduled plan: the summary, then a text timeline per GPU with a legend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import gpuplan
from gpuplan.cli import main
from gpuplan.cli.timeline import MORE, SYMBOLS, timeline

CLUSTER = Path(__file__).resolve().parents[2] / "examples" / "cluster.json"


def _scheduled(tasks: list[dict[str, Any]], gpus: int = 1) -> gpuplan.Plan:
    problem = gpuplan.Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
            "nodes": [
                {"id": "n0", "cpu_cores": 8, "gpus": [{"id": f"g{k}", "type": "A100"} for k in range(gpus)]}
            ],
            "objective": {"kind": "makespan"},
            "tasks": tasks,
        }
    )
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5, workers=1)
    assert plan.status.has_solution and all(a.start_h is not None for a in plan.assignments)
    return plan


def _show(tmp_path: Path, plan: gpuplan.Plan, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "plan.json"
    path.write_text(plan.model_dump_json())
    assert main(["show", str(path)]) == 0
    return capsys.readouterr().out


def test_show_draws_a_chain_one_task_after_the_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _scheduled(
        [
            {"id": "a", "work_h": 1},
            {"id": "b", "work_h": 1, "after": ["a"]},
            {"id": "c", "work_h": 1, "after": ["b"]},
        ]
    )
    out = _show(tmp_path, plan, capsys)
    summary, _, bars = out.partition("\n\ntimeline")
    assert summary == plan.summary()  # the summary first, unchanged
    assert bars.splitlines() == [
        "   0 .. 3 h, 60 columns of 0.05 h (. idle)",
        f"g0         |{'A' * 20}{'B' * 20}{'C' * 20}|",
        "legend     A a [0-1 h]   B b [1-2 h]   C c [2-3 h]",
    ]


def test_tasks_sharing_a_gpu_at_once_take_one_lane_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """x [0-2 h] and y [0-1 h] share g0, z [1-2 h] follows y in y's lane; g1 runs a gang and a CPU-only
    task has its node's row."""
    plan = _scheduled(
        [
            {"id": "x", "gpu_share": 0.5, "work_h": 2},
            {"id": "y", "gpu_share": 0.5, "work_h": 1},
            {"id": "z", "gpu_share": 0.5, "work_h": 1},
            {"id": "etl", "gpus": 0, "cpu_cores": 2, "work_h": 0.5},
        ]
    )
    assert {a.task: (a.start_h, a.end_h) for a in plan.assignments if a.gpus} == {
        "x": (0, 2),
        "y": (0, 1),
        "z": (1, 2),
    }
    lines = _show(tmp_path, plan, capsys).splitlines()
    at = lines.index(next(line for line in lines if line.startswith("timeline")))
    # symbols by planned start, then id: etl A, x B, y C, z D
    assert lines[at + 1 :] == [
        f"g0         |{'B' * 60}|",
        f"           |{'C' * 30}{'D' * 30}|",
        f"n0 (CPU)   |{'A' * 15}{'.' * 45}|",
        "legend     A etl [0-0.5 h]   B x [0-2 h]   C y [0-1 h]   D z [1-2 h]",
    ]


def test_show_leaves_an_unscheduled_plan_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    assert main(["solve", str(CLUSTER), "-o", str(path), "--solver", "greedy"]) == 0
    capsys.readouterr()
    plan = gpuplan.Plan.model_validate(json.loads(path.read_text()))
    assert all(a.start_h is None for a in plan.assignments)
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out == plan.summary() + "\n"
    assert timeline(plan) is None


def test_a_task_shorter_than_a_column_still_shows() -> None:
    plan = _scheduled([{"id": "long", "work_h": 10}, {"id": "tiny", "work_h": 0.01, "after": ["long"]}])
    bar = (timeline(plan) or "").splitlines()[1]
    assert bar == f"g0         |{'A' * 59}B|"


def test_tasks_past_the_symbols_share_one_and_the_legend_counts_them() -> None:
    plan = _scheduled([{"id": f"t{k:02d}", "work_h": 1} for k in range(70)], gpus=2)
    text = timeline(plan) or ""
    bars = "".join(line.split("|")[1] for line in text.splitlines() if "|" in line)
    assert set(bars) == set(SYMBOLS) | {MORE}
    assert f"{MORE} {70 - len(SYMBOLS)} more tasks" in text
    assert all(len(line) <= 100 for line in text.splitlines() if not line.startswith(("timeline", "g")))

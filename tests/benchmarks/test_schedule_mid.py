"""The mid-size schedule benchmark: its batches are seeded, valid and between the exact model and the
neighbourhood search's limit, and its report renders what the runs recorded."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import schedule_mid
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.schedule import schedule_program
from gpuplan.strategy.schedule import LNS_MAX_PAIRS, SCHEDULE_EXACT_PAIRS


def test_batches_are_seeded_and_sized_for_the_neighbourhood_search() -> None:
    a, b = schedule_mid.instance("batch-300"), schedule_mid.instance("batch-300")
    assert a == b and len(a["tasks"]) == 300 and len(a["nodes"]) == 25
    problem = Problem.model_validate(a)
    assert problem.scheduled
    f = schedule_program(compile_fleet(problem)).fleet
    pairs = int((f.eligible_c @ f.usable_per_class()).sum())
    assert SCHEDULE_EXACT_PAIRS < pairs <= LNS_MAX_PAIRS


def test_the_report_shows_each_method(tmp_path: Path) -> None:
    run = {"objective": 90.0, "bound": 80.0, "mean_jct_h": 1.5, "process_s": 29.0, "pairs": 6000}
    rec = {
        "instance": "batch-300",
        "tasks": 300,
        "nodes": 25,
        "auto": {**run, "lns": {"lns_rounds": 12, "lns_improved": 3}},
        "greedy": {**run, "objective": 100.0, "mean_jct_h": 1.6, "process_s": 2.0},
        "cpsat": {**run, "objective": 100.0, "process_s": 30.0},
    }
    path = tmp_path / "r.jsonl"
    meta = {"meta": {"commit": "abc", "time_limit_s": 30}}
    path.write_text(json.dumps(meta) + "\n" + json.dumps(rec) + "\n")
    text = schedule_mid.markdown(path)
    row = next(line for line in text.splitlines() if line.startswith("| batch-300"))
    cells = "| 90.00 | 100.00 | 100.00 | 0.9000 | 80.00 | 1.5000 | 1.6000 | 29.0 | 2.0 | 30.0 | 12 (3) |"
    assert cells in row

"""Hand-made run state directories: a journal written with the executor's own schema, and samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpuplan.executor.journal import Journal

EPOCH = 1_000_000.0

PROBLEM: dict[str, Any] = {
    "gpu_types": [
        {"name": "A", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 4.0, "power_w": 400},
        {"name": "B", "memory_gb": 24, "speed": 1.0, "cost_per_hour": 1.0, "power_w": 100},
    ],
    "nodes": [{"id": "n0", "gpus": [{"id": "a0", "type": "A"}, {"id": "b0", "type": "B"}]}],
    "tasks": [
        {"id": "t1", "group": "train", "work_h": 4.0},
        {"id": "t2", "group": "train", "work_h": 4.0, "gpu_share": 0.5},
        {"id": "t3", "work_h": 1.0, "duration_h": {"B": 3.0}},
    ],
}


def make_run(
    state: Path,
    attempts: list[dict[str, Any]],
    samples: list[dict[str, Any]] | None = None,
    *,
    hour_s: float = 10.0,
    problem: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
) -> Path:
    """A state directory holding `attempts` (task, gpus, state, t_running, t_end in seconds from the
    epoch, n) and `samples` (metrics lines, t in seconds from the epoch)."""
    problem = problem or PROBLEM
    j = Journal(state / "journal.sqlite")
    plan = {"assignments": [{"task": t["id"], "gpus": ["a0"], "duration_h": 2.0} for t in problem["tasks"]]}
    with j.tx():
        j.set("epoch", EPOCH)
        j.set("settings", {"hour_s": hour_s})
        j.set("problem", problem)
        j.set("plan", plan)
        j.set("spec", spec or {"tasks": {}})
        j.set("state", "finished")
        for k, t in enumerate(problem["tasks"]):
            j.exec(
                "INSERT INTO tasks(id, ord, state, gpus, updated) VALUES(?, ?, 'done', '[]', 0)", (t["id"], k)
            )
        for a in attempts:
            j.exec(
                "INSERT INTO attempts(task, n, gpus, state, dir, log, t_start, t_running, t_end, exit_code)"
                " VALUES(?, ?, ?, ?, '', '', ?, ?, ?, ?)",
                (
                    a["task"],
                    a.get("n", 1),
                    json.dumps(a["gpus"]),
                    a["state"],
                    EPOCH + a["t_running"] - 0.1,
                    None if a["t_running"] is None else EPOCH + a["t_running"],
                    None if a.get("t_end") is None else EPOCH + a["t_end"],
                    0 if a["state"] == "succeeded" else 1,
                ),
            )
    j.close()
    with open(state / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for s in samples or []:
            fh.write(json.dumps({**s, "t": EPOCH + s["t"]}) + "\n")
    return state

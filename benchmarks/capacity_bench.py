"""Capacity-planning benchmark: a seeded 2,000-task workload on the 6-offer example catalog.

    python -m benchmarks.capacity_bench --tasks 2000 --seed 0 --out benchmarks/results/capacity-2000.json

Generates the workload (a realistic mix: single-GPU inference and fine-tuning, 2- and 4-GPU
training, 8-GPU gangs, 10% optional, 30% with deadlines), runs `gpuplan capacity` on it in a
subprocess (the real command, timed end to end) and prints JSON: wall_s, rounds, fleet, cost,
lp_bound, milp_bound, gap, assignment status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "capacity" / "catalog.json"

#: (share, gang choices, memory GB range, work per GPU range in reference GPU-hours)
MIX = [
    (0.40, (1,), (8, 24), (1.0, 24.0)),  # inference, evaluation
    (0.25, (1,), (24, 48), (4.0, 60.0)),  # fine-tuning
    (0.20, (2, 4), (30, 80), (10.0, 80.0)),  # training
    (0.10, (8,), (40, 80), (12.0, 60.0)),  # large training
    (0.05, (1, 2), (70, 80), (2.0, 20.0)),  # big-memory inference
]


def make_workload(n: int, seed: int = 0, horizon_h: float = 720.0) -> dict[str, Any]:
    """A seeded workload dict (see the module docstring)."""
    rng = np.random.default_rng(seed)
    shares = np.array([m[0] for m in MIX])
    kinds = rng.choice(len(MIX), size=n, p=shares / shares.sum())
    tasks = []
    for i, k in enumerate(kinds):
        _, gangs, (m0, m1), (w0, w1) = MIX[k]
        gang = int(rng.choice(gangs))
        work = float(np.round(np.exp(rng.uniform(np.log(w0), np.log(w1))), 2))
        task: dict[str, Any] = {
            "id": f"job-{i:04d}",
            "work_h": work,
            "gpus": gang,
            "gpu_memory_gb": float(rng.integers(m0, m1 + 1)),
            "priority": int(rng.integers(0, 4)),
        }
        if rng.random() < 0.10:
            task["optional"] = True
        if rng.random() < 0.30:
            # due somewhere after 3x its duration on the reference GPU, at least one day
            lo = min(horizon_h, max(24.0, 3.0 * work))
            task["deadline_h"] = float(np.round(rng.uniform(lo, horizon_h), 1))
        tasks.append(task)
    return {"horizon_h": horizon_h, "tasks": tasks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--horizon", type=float, default=720.0)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--workload-out", help="write the generated workload here")
    args = ap.parse_args(argv)
    wl = make_workload(args.tasks, args.seed, args.horizon)
    with tempfile.TemporaryDirectory() as tmp:
        wpath = Path(args.workload_out or Path(tmp) / "workload.json")
        wpath.write_text(json.dumps(wl), encoding="utf-8")
        cmd = [
            sys.executable, "-m", "gpuplan.cli", "capacity", str(wpath), str(CATALOG),
            "--time-limit", str(args.time_limit), "--workers", str(args.workers), "--seed", str(args.seed),
        ]  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
        wall = time.monotonic() - t0
    sys.stderr.write(proc.stderr)
    rep = json.loads(proc.stdout)
    out = {
        "command": " ".join(["gpuplan", *cmd[3:5], "<catalog>", *cmd[6:]]),
        "tasks": args.tasks,
        "seed": args.seed,
        "offers": 6,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "status": rep["status"],
        "rounds": len(rep["rounds"]),
        "round_log": [
            {k: r.get(k) for k in ("round", "change", "fleet", "cost", "proven", "method", "n_failed")}
            for r in rep["rounds"]
        ],
        "fleet": {f["offer"]: {"nodes": f["nodes"], "committed": f["committed"]} for f in rep["fleet"]},
        "cost": rep["cost"],
        "lp_bound": rep["lp_bound"],
        "milp_bound": rep["milp_bound"],
        "gap": rep["gap"],
        "gap_lp": rep["gap_lp"],
        "utilization": {u["offer"]: u["utilization"] for u in rep["utilization"]},
        "assigned_tasks": len(rep["assignments"]),
        "optional_left_out": len(rep["optional_left_out"]),
        "alternatives": [{k: a[k] for k in ("without", "cost")} for a in rep["alternatives"]],
        "stats": rep["stats"],
        "cpu_count": os.cpu_count(),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""A large batch with three priority levels: 12,500 optional tasks on 1,250 nodes (10,000 GPUs).

The tiers are too wide to weigh in one objective (their exact weights pass 1e16), so gpuplan solves
them tier by tier. The baseline, run in the same command and under the same limit, is the top tier
solved alone (the tasks of the highest priority only, on the same fleet): the full batch must place
the top tier as fully as that. Both are whole `gpuplan solve` processes; the report gives exit
codes, wall times, peak memory, tasks placed per tier, objective and bound.

    python -m benchmarks.priority_batch --time-limit 30 --workers 2 \
        --out benchmarks/results/priority-batch-30s
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

TYPES = [
    {"name": "A100", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 3.0},
    {"name": "V100", "memory_gb": 32, "speed": 1.0, "cost_per_hour": 1.2},
    {"name": "T4", "memory_gb": 16, "speed": 0.5, "cost_per_hour": 0.4},
]


def batch(n_tasks: int = 12_500, n_nodes: int = 1_250, seed: int = 0) -> dict[str, Any]:
    """Nodes of 8 GPUs of one type each, 64 cores and 512 GB; optional tasks of priority 0-2, a third
    of them gangs of 2 or 4 GPUs, the rest whole or shared GPUs, with CPU and host memory."""
    rng = random.Random(seed)
    nodes = [
        {"id": f"n{i}", "gpu_counts": {TYPES[i % 3]["name"]: 8}, "cpu_cores": 64, "memory_gb": 512}
        for i in range(n_nodes)
    ]
    tasks = []
    for j in range(n_tasks):
        gang = rng.choice([1, 1, 1, 1, 2, 4])
        tasks.append(
            {
                "id": f"t{j}",
                "gpus": gang,
                "gpu_share": 1.0 if gang > 1 else rng.choice([0.25, 0.5, 1.0]),
                "gpu_memory_gb": rng.choice([8, 16, 24, 40]),
                "cpu_cores": rng.choice([2, 4, 8]),
                "memory_gb": rng.choice([16, 32, 64]),
                "work_h": round(rng.uniform(0.5, 20), 2),
                "priority": rng.choice([0, 1, 2]),
                "optional": True,
            }
        )
    return {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}


def _run(problem: dict[str, Any], limit: float, workers: int, seed: int) -> dict[str, Any]:
    """One `gpuplan solve` process: exit code, wall time, peak RSS of the child, and its plan."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "problem.json", Path(tmp) / "plan.json"
        src.write_text(json.dumps(problem))
        cmd = [sys.executable, "-m", "gpuplan.cli", "solve", str(src), "-o", str(out)]
        cmd += ["--time-limit", str(limit), "--workers", str(workers), "--seed", str(seed)]
        # /usr/bin/time reports this process's own peak resident memory (GNU time: %M, in KB)
        started = time.monotonic()
        timer = ["/usr/bin/time", "-f", "MAXRSS_KB=%M"] if Path("/usr/bin/time").exists() else []
        proc = subprocess.run([*timer, *cmd], capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        rss = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB=")]
        peak_mb = int(rss[-1].split("=")[1]) / 1024 if rss else float("nan")
        plan = json.loads(out.read_text()) if out.exists() else None
    return {
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_mb": round(peak_mb),
        "plan": plan,
        "stderr": proc.stderr[-500:],
    }


def _placed(plan: dict[str, Any] | None, priority: dict[str, int]) -> dict[int, int]:
    if plan is None:
        return {}
    return dict(sorted(Counter(priority[a["task"]] for a in plan["assignments"]).items()))


def main(argv: list[str] | None = None) -> int:
    """Run the batch and its top tier alone; write <out>.json and <out>.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/priority-batch")
    args = ap.parse_args(argv)
    full = batch(seed=args.seed)
    priority = {t["id"]: t["priority"] for t in full["tasks"]}
    top = max(priority.values())
    alone = {**full, "tasks": [t for t in full["tasks"] if t["priority"] == top]}
    rows = {}
    for name, problem in (("batch", full), ("top tier alone", alone)):
        r = _run(problem, args.time_limit, args.workers, args.seed)
        plan = r.pop("plan")
        r.update(
            tasks=len(problem["tasks"]),
            placed_by_priority=_placed(plan, priority),
            status=plan and plan["status"],
            solver=plan and plan["solver"],
            objective=plan and plan["objective"],
            bound=plan and plan["bound"],
            gap=plan and plan["gap"],
        )
        rows[name] = r
        print(name, {k: v for k, v in r.items() if k != "stderr"}, file=sys.stderr)
    report = {
        "command": "python -m benchmarks.priority_batch " + " ".join(argv or sys.argv[1:]),
        "time_limit_s": args.time_limit,
        "workers": args.workers,
        "seed": args.seed,
        "rows": rows,
        "top_tier_as_full_as_alone": rows["batch"]["placed_by_priority"].get(top, 0)
        >= rows["top tier alone"]["placed_by_priority"].get(top, 0),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Priority batch: 12,500 optional tasks, priorities 0-2, 10,000 GPUs ({args.time_limit:g} s, "
        f"{args.workers} workers, seed {args.seed})",
        "",
        f"`{report['command']}`",
        "",
        "| run | tasks | exit | wall s | peak MB | solver | placed by priority | objective | bound | gap |",
        "|---|--:|--:|--:|--:|---|---|--:|--:|--:|",
    ]
    for name, r in rows.items():
        gap = "-" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
        obj = "-" if r["objective"] is None else f"{r['objective']:.6g}"
        bound = "-" if r["bound"] is None else f"{r['bound']:.6g}"
        lines.append(
            f"| {name} | {r['tasks']} | {r['rc']} | {r['wall_s']} | {r['peak_mb']} | {r['solver']} | "
            f"{r['placed_by_priority']} | {obj} | {bound} | {gap} |"
        )
    lines += ["", f"Top tier placed as fully as alone: {report['top_tier_as_full_as_alone']}."]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    return 0 if report["top_tier_as_full_as_alone"] and rows["batch"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

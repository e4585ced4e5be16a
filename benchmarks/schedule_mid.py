"""Scheduled programs between the exact model and the trace: gpuplan against its own schedules
alone and against its full CP-SAT model, at the same limit, in one command.

Programs past `strategy.schedule.SCHEDULE_EXACT_PAIRS` eligible (task, GPU) pairs but far below
the openb trace: auto runs the event and list schedules for the first half of the limit, then the
large-neighbourhood search over time windows and node sets (`backends/schedule_lns.py`) for the
rest. Side by side, one after the other, each a separate process timed as a whole:

- `greedy`: the same schedules alone, for the whole limit (what auto did on these programs before
  the neighbourhood search);
- `cpsat`: the full interval model (`backends/schedule_cpsat.py`) hinted with the schedules' best.

Instances (every one seeded, so the same in every run):

- `batch-N`: N jobs on N/12 nodes of 4 GPUs, half A100 (80 GB), half T4 (16 GB); gangs of 1, 2 or
  4 GPUs, GPU memory 8-60 GB, half of the small one-GPU jobs sharing a GPU (0.5), 0.2-4 h of
  work, releases uniform in 0-6 h; objective: total completion time (mean JCT x N + releases).
- `openb-N-M`: the first N scheduled GPU pods of the openb trace on its first M GPU nodes, with
  trace durations and arrivals compressed as `openb_time` does (pods that fit no node of the sample
  left out; the compression brings the peak demand to `PEAK` x the sample's GPUs); objective: total
  completion time.

Reported: the objective, the proven bound, mean JCT (hours), the whole process's wall time and peak
memory, and what the neighbourhood search did. Every plan is verified by gpuplan itself before it is returned.

Usage: ``python -m benchmarks.schedule_mid [--time-limit 30] [--out FILE.jsonl]``
``python -m benchmarks.schedule_mid --markdown FILE.jsonl`` prints the report.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.baselines import run_timed
from benchmarks.run_gap import cpu_model, git_commit, nproc

REPO = Path(__file__).resolve().parent.parent

#: The instances: (name, kind, size, nodes).
INSTANCES = (
    ("batch-300", "batch", 300, 25),
    ("batch-600", "batch", 600, 50),
    ("batch-1200", "batch", 1200, 100),
    ("openb-400-20", "openb", 400, 20),
    ("openb-1000-50", "openb", 1000, 50),
)
METHODS = ("auto", "greedy", "cpsat")
#: Peak demand of the openb samples, times their GPUs.
PEAK = 3.0


def batch(n_tasks: int, n_nodes: int, seed: int = 0) -> dict[str, Any]:
    """The `batch-N` instance (module docstring)."""
    r = random.Random(seed)
    types = [
        {"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0},
        {"name": "T4", "memory_gb": 16, "cost_per_hour": 0.5},
    ]
    nodes = [
        {
            "id": f"n{i}",
            "gpus": [{"id": f"n{i}-{j}", "type": "A100" if i % 2 == 0 else "T4"} for j in range(4)],
        }
        for i in range(n_nodes)
    ]
    tasks = []
    for k in range(n_tasks):
        g = r.choice([1, 1, 1, 1, 2, 4])
        mem = r.choice([8, 12, 30, 60]) if g == 1 else r.choice([30, 60])
        task: dict[str, Any] = {
            "id": f"t{k}",
            "gpus": g,
            "gpu_memory_gb": mem,
            "work_h": round(r.uniform(0.2, 4), 2),
            "release_h": round(r.uniform(0, 6), 2),
        }
        if g == 1 and mem <= 12 and r.random() < 0.5:
            task["gpu_share"] = 0.5
        tasks.append(task)
    return {"gpu_types": types, "nodes": nodes, "tasks": tasks, "objective": {"kind": "completion_time"}}


def openb_sample(first: int, first_nodes: int) -> dict[str, Any]:
    """The `openb-N-M` instance (module docstring)."""
    from benchmarks import openb_time as ot

    w = ot.workload(1, copies=1, peak=PEAK, first=first, first_nodes=first_nodes)
    return ot.scheduled_problem(workload_=w)


def instance(name: str) -> dict[str, Any]:
    """The problem of one instance by name."""
    for n, kind, size, nodes in INSTANCES:
        if n == name:
            return batch(size, nodes) if kind == "batch" else openb_sample(size, nodes)
    raise KeyError(name)


def _child(problem_file: str, solver: str, time_limit: float) -> int:
    """One method on one instance, in its own process: solve and print what the report needs (one
    JSON object, as `baselines.run_timed` reads it)."""
    from gpuplan.api import solve

    problem = json.loads(Path(problem_file).read_text())
    plan = solve(problem, solver=solver, time_limit_s=time_limit, workers=2, seed=0)
    release = {t["id"]: float(t.get("release_h", 0.0)) for t in problem["tasks"]}
    jct = [a.end_h - release[a.task] for a in plan.assignments if a.end_h is not None]
    record = {
        "status": plan.status.value,
        "solver": plan.solver,
        "objective": plan.objective,
        "bound": plan.bound,
        "placed": len(jct),
        "mean_jct_h": sum(jct) / len(jct) if jct else None,
        "pairs": plan.stats.get("schedule_pairs"),
        "lns": {k: v for k, v in plan.stats.items() if k.startswith("lns_")},
    }
    print(json.dumps(record))
    return 0


def run(name: str, time_limit: float) -> dict[str, Any]:
    """Every method on one instance, one process each, one after the other, each timed as a whole
    and killed past `baselines.kill_after` (`baselines.run_timed`)."""
    problem = instance(name)
    out: dict[str, Any] = {"instance": name, "tasks": len(problem["tasks"]), "nodes": len(problem["nodes"])}
    with tempfile.TemporaryDirectory() as tmp:
        pfile = Path(tmp) / "problem.json"
        pfile.write_text(json.dumps(problem))
        for method in METHODS:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.schedule_mid",
                "--child",
                str(pfile),
                method,
                str(time_limit),
            ]
            rec = run_timed(cmd, time_limit, cwd=REPO)
            rec["process_s"] = round(rec.pop("wall_s"), 2)
            out[method] = rec
    return out


def markdown(path: Path) -> str:
    """The report of a JSON-lines file as a table."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = rows[0].get("meta", {}) if rows else {}
    lines = [
        "# Scheduled programs between the exact model and the trace",
        "",
        f"- command: `{head.get('command', '')}`",
        f"- commit `{head.get('commit', '')}`, {head.get('date', '')}; {head.get('host', '')}",
        f"- time limit {head.get('time_limit_s', '')} s, 2 workers, seed 0; each method a separate process"
        " (wall: the whole process); objective: total completion time (h); every plan verified by gpuplan",
        "",
        "| instance | tasks | pairs | auto objective | greedy | cpsat | auto / greedy | bound"
        " | auto mean JCT h | greedy mean JCT h | auto s | greedy s | cpsat s | neighbourhoods (improved) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        if "instance" not in r:
            continue
        a, g, c = r.get("auto", {}), r.get("greedy", {}), r.get("cpsat", {})

        def num(x: Any, fmt: str = "{:,.2f}") -> str:
            return "—" if x is None else fmt.format(x)

        ratio = a.get("objective") / g["objective"] if a.get("objective") and g.get("objective") else None
        lns = a.get("lns", {})
        lines.append(
            f"| {r['instance']} | {r['tasks']} | {num(a.get('pairs'), '{:,}')} | {num(a.get('objective'))}"
            f" | {num(g.get('objective'))} | {num(c.get('objective'))} | {num(ratio, '{:.4f}')}"
            f" | {num(a.get('bound'))} | {num(a.get('mean_jct_h'), '{:.4f}')}"
            f" | {num(g.get('mean_jct_h'), '{:.4f}')} | {num(a.get('process_s'), '{:.1f}')}"
            f" | {num(g.get('process_s'), '{:.1f}')} | {num(c.get('process_s'), '{:.1f}')}"
            f" | {lns.get('lns_rounds', '—')} ({lns.get('lns_improved', '—')}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=30.0, help="each method's wall-clock limit (s)")
    ap.add_argument("--names", default=None, help="instances to run, comma-separated (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the records to this JSON-lines file")
    ap.add_argument("--markdown", type=Path, default=None, help="print a JSON-lines report as a table")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args.child[0], args.child[1], float(args.child[2]))
    if args.markdown:
        print(markdown(args.markdown), end="")
        return 0
    names = args.names.split(",") if args.names else [n for n, *_ in INSTANCES]
    meta = {
        "command": "python -m benchmarks.schedule_mid "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": f"{nproc()} cores ({cpu_model()})",
        "time_limit_s": args.time_limit,
    }
    if args.out:
        args.out.write_text(json.dumps({"meta": meta}) + "\n")
    for name in names:
        rec = run(name, args.time_limit)
        print(json.dumps(rec), flush=True)
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

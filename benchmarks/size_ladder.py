"""The size ladder: random fleets and batches at 1k, 10k and 100k tasks (800 to 80,000 GPUs).

Each rung is a fleet of nodes of 8 GPUs (one of three types a node, round robin), 64 cores and
512 GB, and ten optional tasks per node drawn at random (seeded): gangs of 1, 2, 4 or 8 GPUs, a
single GPU's share 0.25, 0.5 or 1, GPU memory, CPU, host memory and an individual `work_h`. Default
objective; with `--priorities`, priorities 0-2 too. The batch asks for about 1.8 times the fleet's
GPUs, so what to leave out is the question.

Per rung, two whole `python -m benchmarks.size_ladder --solve` processes under the same limit:
gpuplan's default (auto) and, as the plain baseline, its greedy alone (`--solver greedy`). Each
reports where its time goes: reading the file, validating it, the solve (its build, bounds, search
and verification from the plan's stats) and writing the plan; the parent times the process as a
whole and reads its peak resident memory.

    python -m benchmarks.size_ladder --tasks 1000,10000,100000 --time-limit 60 \\
        --out benchmarks/results/size-ladder-60s.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.baselines import run_timed
from benchmarks.priority_batch import TYPES
from benchmarks.run_gap import cpu_model, git_commit, nproc

REPO = Path(__file__).resolve().parent.parent
TASKS_PER_NODE = 10
METHODS = (("gpuplan", "auto"), ("greedy", "greedy"))


def ladder_problem(n_tasks: int, seed: int = 0, priorities: bool = False) -> dict[str, Any]:
    """One rung (module docstring) as a gpuplan Problem (JSON-able dict)."""
    rng = random.Random(seed)
    n_nodes = max(1, n_tasks // TASKS_PER_NODE)
    nodes = [
        {"id": f"n{i}", "gpu_counts": {TYPES[i % 3]["name"]: 8}, "cpu_cores": 64, "memory_gb": 512}
        for i in range(n_nodes)
    ]
    tasks = []
    for j in range(n_tasks):
        gang = rng.choice([1, 1, 1, 1, 2, 4, 8])
        task: dict[str, Any] = {
            "id": f"t{j}",
            "gpus": gang,
            "gpu_share": 1.0 if gang > 1 else rng.choice([0.25, 0.5, 1.0]),
            "gpu_memory_gb": rng.choice([8, 16, 24, 40]),
            "cpu_cores": rng.choice([2, 4, 8]),
            "memory_gb": rng.choice([16, 32, 64]),
            "work_h": round(rng.uniform(0.5, 20), 2),
            "optional": True,
        }
        if priorities:
            task["priority"] = rng.choice([0, 1, 2])
        tasks.append(task)
    return {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}


def solve_child(problem_file: str, plan_file: str, limit: float, solver: str, workers: int) -> dict[str, Any]:
    """One solve, timed phase by phase; the plan written to `plan_file`."""
    t0 = time.perf_counter()
    text = Path(problem_file).read_text(encoding="utf-8")
    data = json.loads(text)
    t_read = time.perf_counter() - t0
    import gpuplan
    from gpuplan.api import parse_problem

    t1 = time.perf_counter()
    problem = parse_problem(data)
    t_validate = time.perf_counter() - t1
    t2 = time.perf_counter()
    plan = gpuplan.solve(problem, solver=solver, time_limit_s=limit, workers=workers)
    t_solve = time.perf_counter() - t2
    t3 = time.perf_counter()
    Path(plan_file).write_text(json.dumps(plan.model_dump(mode="json")), encoding="utf-8")
    t_write = time.perf_counter() - t3
    st = plan.stats
    gpus = {t.id: t.gpus * t.gpu_share for t in problem.tasks}  # type: ignore[union-attr]
    work = {t.id: t.gpus * t.gpu_share * (t.work_h or 0.0) for t in problem.tasks}  # type: ignore[union-attr]
    placed = {a.task for a in plan.assignments}
    bound_s = float(st.get("lp_s", 0.0) or 0.0)
    pattern_s = float(st.get("pattern_s", 0.0) or 0.0)
    return {
        "status": plan.status.value,
        "objective": plan.objective,
        "bound": plan.bound,
        "gap": plan.gap,
        "solver": plan.solver,
        "phases": plan.phases,
        "tasks": len(gpus),
        "placed": len(placed),
        "placed_gpus": round(sum(gpus[t] for t in placed), 3),
        "placed_gpu_work_h": round(sum(work[t] for t in placed), 3),
        "read_s": round(t_read, 3),
        "validate_s": round(t_validate, 3),
        "solve_s": round(t_solve, 3),
        "build_s": st.get("build_s"),
        "bound_s": round(bound_s, 3),
        "pattern_s": round(pattern_s, 3),
        "verify_s": st.get("verify_s"),
        "write_s": round(t_write, 3),
        "lns_rounds": st.get("lns_rounds"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_rung(n: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Both methods on one rung."""
    problem = ladder_problem(n, seed=args.seed, priorities=args.priorities)
    path = folder / f"ladder-{n}.json"
    path.write_text(json.dumps(problem), encoding="utf-8")
    row: dict[str, Any] = {
        "tasks": n,
        "nodes": len(problem["nodes"]),
        "gpus": 8 * len(problem["nodes"]),
        "priorities": args.priorities,
        "time_limit": args.time_limit,
        "file_mb": round(path.stat().st_size / 2**20, 2),
    }
    for name, solver in METHODS:
        out = folder / f"plan-{n}-{name}.json"
        cmd = [sys.executable, "-m", "benchmarks.size_ladder", "--solve", str(path), str(out)]
        cmd += ["--time-limit", f"{args.time_limit:g}", "--solver", solver, "--workers", str(args.workers)]
        res = run_timed(cmd, args.time_limit, cwd=REPO, kill_s=3 * args.time_limit + 60)
        read = float(res.get("read_s") or 0.0) + float(res.get("validate_s") or 0.0)
        res["within_limit"] = (
            res.get("wall_s") is not None and res["wall_s"] <= 1.1 * args.time_limit + 1 + read
        )
        row[name] = res
        print(
            f"  {n:>7} {name:8s} {res.get('status')!s:9s} placed {res.get('placed')} gap {res.get('gap')}"
            f" wall {res.get('wall_s')} s peak {res.get('peak_mb')} MB",
            flush=True,
        )
    return row


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.2f}%"


def markdown(path: Path) -> str:
    """The report of a results file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    out = [
        "# The size ladder: random fleets and batches at growing sizes",
        "",
        f"- command: `{head['command']}`",
        f"- commit `{head['commit']}`, {head['date']}; {head['nproc']} cores ({head['cpu']})",
        f"- time limit {head['time_limit']:g} s, workers {head['workers']}, seed {head['seed']}; each method"
        " a whole process; 'within' means wall <= 1.1 x limit + 1 s + reading and validating the input",
        "",
        "| tasks | GPUs | method | status | placed | placed GPUs | placed GPU-work h | gap | wall s | within"
        " | peak MB | read s | validate s | build s | LP bound s | node patterns s | verify s | write s"
        " | LNS rounds |",
        "|" + "---|" * 19,
    ]
    for r in rows:
        for name, _ in METHODS:
            x = r[name]
            cells = [
                f"{r['tasks']:,}",
                f"{r['gpus']:,}",
                name,
                str(x.get("status")),
                str(x.get("placed")),
                str(x.get("placed_gpus")),
                str(x.get("placed_gpu_work_h")),
                _pct(x.get("gap")),
                str(x.get("wall_s")),
                "yes" if x.get("within_limit") else "NO",
                str(x.get("peak_mb")),
                str(x.get("read_s")),
                str(x.get("validate_s")),
                str(x.get("build_s")),
                str(x.get("bound_s")),
                str(x.get("pattern_s", "")),
                str(x.get("verify_s")),
                str(x.get("write_s")),
                str(x.get("lns_rounds")),
            ]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.size_ladder", description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="1000,10000,100000", help="comma-separated rung sizes")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--solver", default="auto", help="(with --solve) the solver of that one run")
    ap.add_argument("--priorities", action="store_true", help="priorities 0-2 on the tasks")
    ap.add_argument("--out", type=Path, help="results file (.jsonl); the report goes beside it (.md)")
    ap.add_argument("--solve", nargs=2, metavar=("PROBLEM", "PLAN"), help="run one solve (a child)")
    args = ap.parse_args(argv)
    if args.solve:
        res = solve_child(args.solve[0], args.solve[1], args.time_limit, args.solver, args.workers)
        sys.stdout.write(json.dumps(res) + "\n")
        return 0
    head = {
        "command": "python -m benchmarks.size_ladder " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": nproc(),
        "cpu": cpu_model(),
        "time_limit": args.time_limit,
        "workers": args.workers,
        "seed": args.seed,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.tasks.split(",")]:
            rows.append(run_rung(n, args, Path(tmp)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(json.dumps(x) for x in [head, *rows]) + "\n", encoding="utf-8")
        args.out.with_suffix(".md").write_text(markdown(args.out), encoding="utf-8")
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

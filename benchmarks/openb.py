"""gpuplan on the Alibaba openb trace (Weng et al., ATC'23) against best-fit and random-fit.

    python benchmarks/openb.py --pods default --time-limit 60 [--scale 1] [--workers 2] [--seed 0]
    python -m benchmarks.openb --pods all --time-limit 60 --out benchmarks/results/openb.jsonl
    python -m benchmarks.openb --pods cpu --nodes all --time-limit 20 --out benchmarks/results/openb-cpu.jsonl

Per pod list: the GPU pods become optional tasks on the 1213 GPU nodes (x scale) with objective
"placed"; gpuplan.solve is timed together with loading (wall_s), its plan is checked against the raw
trace (benchmarks.openbdata.check_placement), and both baselines run on the same pods. One JSON
object per pod list goes to stdout (and, with --out, is appended to that file as a JSON line). GPU
amounts are in GPUs (1000 milli = 1). `--pods all` runs each list in a fresh process, so wall_s and
peak_rss_mb are per list. The exit status is 1 when a solve failed or a plan did not check.

`--nodes all` uses the full node list (1523 nodes, 310 without GPUs) and plans the CPU-only pods too,
as CPU-only tasks (`gpus: 0`) weighing CPU_POD_WEIGHT GPUs all together (GPU placed first, then the
CPU-only pods placed); the baselines place them by CPU and memory in trace order, and the record
adds the CPU-only pods placed by each. `--pods cpu` runs every `cpu*` list.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpuplan
from benchmarks import openbdata
from benchmarks.run_gap import git_commit


def _gpus(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def run_one(
    pod_list: str,
    *,
    time_limit: float,
    scale: int,
    workers: int | None,
    seed: int,
    all_nodes: bool = False,
) -> dict[str, Any]:
    """Load, solve, check and measure one pod list; run both baselines on it. Never raises for a solve
    or check failure: the record says what went wrong (`status` "error", `check` the message).
    `all_nodes`: the full node list, and the CPU-only pods planned too."""
    started = time.perf_counter()
    nodes, pods = openbdata.scale_data(
        openbdata.read_nodes(all_nodes=all_nodes), openbdata.read_pods(pod_list), scale
    )
    problem, info = openbdata.to_problem(
        nodes, pods, time_limit=time_limit, workers=workers, seed=seed, cpu_pods=all_nodes
    )
    rec: dict[str, Any] = {
        "pod_list": pod_list,
        "scale": scale,
        "time_limit_s": time_limit,
        "workers": workers,
        "seed": seed,
        "pods": info["pods"],
        "gpu_pods": info["gpu_pods"],
        "cpu_only_skipped": info["cpu_only_skipped"],
        "nodes": info["nodes"],
        "gpus": info["gpus"],
        "gpu_requested": _gpus(info["gpu_requested"]),
        **dict.fromkeys(("status", "solver", "objective", "bound", "gpu_upper_bound", "check")),
        **dict.fromkeys(("pods_placed", "gpu_placed", "gpus_idle", "gpus_fragmented")),
    }
    # The CPU-only pods' part of an objective or bound: at most cpu_slack (GPUs).
    cpu_slack = info.get("cpu_pod_weight", 0.0) * info.get("cpu_pods", 0)
    if all_nodes:
        rec.update(node_list="all", cpu_pods=info["cpu_pods"], cpu_pods_placed=None)
    if info["unplaceable_spec"] or info["spec_models_dropped"]:
        rec["unplaceable_spec"] = len(info["unplaceable_spec"])
        rec["spec_models_dropped"] = info["spec_models_dropped"]
    placement: openbdata.Placement = {}
    try:
        plan = gpuplan.solve(problem, time_limit_s=time_limit, workers=workers, seed=seed)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}")
        plan = None
    rec["wall_s"] = round(time.perf_counter() - started, 3)
    rec["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if plan is not None:
        rec.update(
            solve_wall_s=plan.wall_time_s,
            status=plan.status.value,
            solver=plan.solver,
            objective=_gpus(plan.objective),
            bound=_gpus(plan.bound),
            gpu_upper_bound=None
            if plan.bound is None
            else _gpus(info["gpu_requested"] - plan.bound + cpu_slack),
        )
        placement = openbdata.plan_to_placement(plan)
    try:
        openbdata.check_placement(nodes, pods, placement)
        rec["check"] = "ok"
        rec.update(
            {
                k: _gpus(v) if k == "gpu_placed" else v
                for k, v in openbdata.metrics(nodes, pods, placement).items()
            }
        )
    except openbdata.PlacementError as exc:
        rec["check"] = str(exc)
    if plan is not None and plan.objective is not None and rec["gpu_placed"] is not None:
        # The plan's own count (requested - unplaced) must agree with the checker's.
        cpu_left = info.get("cpu_pods", 0) - openbdata.cpu_pods_placed(pods, placement)
        cpu_part = info.get("cpu_pod_weight", 0.0) * cpu_left
        rec["objective_gpu_placed"] = _gpus(info["gpu_requested"] - plan.objective + cpu_part)
        if all_nodes:
            rec["cpu_pods_placed"] = openbdata.cpu_pods_placed(pods, placement)
    for name, fn in (
        ("best_fit", lambda n, p: openbdata.best_fit(n, p, cpu_pods=all_nodes)),
        ("random_fit", lambda n, p: openbdata.random_fit(n, p, seed, cpu_pods=all_nodes)),
    ):
        t0 = time.perf_counter()
        base = fn(nodes, pods)
        secs = time.perf_counter() - t0
        m = openbdata.metrics(nodes, pods, base)
        if all_nodes:
            rec[f"{name}_cpu_pods_placed"] = openbdata.cpu_pods_placed(pods, base)
        rec[f"{name}_gpu_placed"] = _gpus(m["gpu_placed"])
        rec[f"{name}_pods_placed"] = m["pods_placed"]
        rec[f"{name}_gpus_idle"] = m["gpus_idle"]
        rec[f"{name}_gpus_fragmented"] = m["gpus_fragmented"]
        rec[f"{name}_s"] = round(secs, 3)
    rec["commit"] = git_commit()
    return rec


def markdown(path: Path) -> str:
    """A markdown table of the records in a JSON-lines file written with --out."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if any("cpu_pods" in r for r in rows):
        return _markdown_cpu(rows)
    head = (
        "| pod list | scale | GPU pods | requested | gpuplan placed | upper bound | placed/bound | best-fit |"
        " random-fit | idle | fragmented | wall s | peak MB | status | check |"
    )
    out = [head, "|" + "---|" * 15]
    for r in rows:
        ratio = r["gpu_placed"] / r["gpu_upper_bound"] if r.get("gpu_upper_bound") else float("nan")
        out.append(
            f"| {r['pod_list']} | {r['scale']} | {r['gpu_pods']} | {r['gpu_requested']:.1f} | "
            f"{r['gpu_placed']:.2f} | {r['gpu_upper_bound']:.2f} | {100 * ratio:.2f}% | "
            f"{r['best_fit_gpu_placed']:.2f} | {r['random_fit_gpu_placed']:.2f} | {r['gpus_idle']} | "
            f"{r['gpus_fragmented']} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['status']} | "
            f"{r['check']} |"
        )
    commits = sorted({r.get("commit", "?") for r in rows})
    out.append("")
    out.append(f"Commit(s): {', '.join(commits)}; time limit {rows[0]['time_limit_s'] if rows else '?'} s.")
    return "\n".join(out)


def _markdown_cpu(rows: list[dict[str, Any]]) -> str:
    """The table of runs with CPU-only pods (--nodes all): GPU placed against its bound and the
    baselines, then CPU-only pods placed by each."""
    head = (
        "| pod list | nodes | GPU pods | CPU pods | requested | gpuplan placed | upper bound | placed/bound |"
        " best-fit | random-fit | gpuplan CPU pods | best-fit CPU pods | random-fit CPU pods | wall s |"
        " status | check |"
    )
    out = [head, "|" + "---|" * 16]
    for r in rows:
        ratio = r["gpu_placed"] / r["gpu_upper_bound"] if r.get("gpu_upper_bound") else float("nan")
        out.append(
            f"| {r['pod_list']} | {r['nodes']} | {r['gpu_pods']} | {r['cpu_pods']} |"
            f" {r['gpu_requested']:.1f} | {r['gpu_placed']:.2f} | {r['gpu_upper_bound']:.2f} |"
            f" {100 * ratio:.2f}% |"
            f" {r['best_fit_gpu_placed']:.2f} | {r['random_fit_gpu_placed']:.2f} | {r['cpu_pods_placed']} |"
            f" {r['best_fit_cpu_pods_placed']} | {r['random_fit_cpu_pods_placed']} | {r['wall_s']:.1f} |"
            f" {r['status']} | {r['check']} |"
        )
    commits = sorted({r.get("commit", "?") for r in rows})
    out.append("")
    out.append(f"Commit(s): {', '.join(commits)}; time limit {rows[0]['time_limit_s']} s.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pods", default="default", help="pod list name (default, gpushare40, ...), 'all' or 'cpu' (cpu*)"
    )
    ap.add_argument(
        "--nodes",
        choices=("gpu", "all"),
        default="gpu",
        help="node list: the GPU nodes, or all nodes with the CPU-only pods planned too",
    )
    ap.add_argument("--time-limit", type=float, default=60.0, help="gpuplan wall-clock limit in seconds")
    ap.add_argument(
        "--scale", type=int, default=1, help="copies of the cluster and of the pods (x2, x4 growth)"
    )
    ap.add_argument("--workers", type=int, default=None, help="solver threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=0, help="seed of gpuplan and of random-fit")
    ap.add_argument("--data", default=None, help="the shared folder (or its data subfolder)")
    ap.add_argument("--out", type=Path, default=None, help="append each record to this file as a JSON line")
    ap.add_argument(
        "--markdown", type=Path, default=None, help="print a JSON-lines report as a table and exit"
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0
    if args.data:
        openbdata.set_data_dir(args.data)
    try:
        names = openbdata.pod_list_names()
    except openbdata.DataMissingError as exc:
        print(f"openb: {exc}", file=sys.stderr)
        return 2
    if args.pods in ("all", "cpu"):
        rc = 0
        for name in names if args.pods == "all" else [n for n in names if n.startswith("cpu")]:
            cmd = [sys.executable, "-m", "benchmarks.openb", *_forward(args), "--pods", name]
            rc = max(rc, subprocess.run(cmd, cwd=openbdata.REPO_ROOT, check=False).returncode)
        return rc
    if args.pods not in names:
        print(
            f"openb: no pod list {args.pods!r}; choose one of: all, cpu, {', '.join(names)}", file=sys.stderr
        )
        return 2
    rec = run_one(
        args.pods,
        time_limit=args.time_limit,
        scale=args.scale,
        workers=args.workers,
        seed=args.seed,
        all_nodes=args.nodes == "all",
    )
    line = json.dumps(rec)
    print(line, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0 if rec.get("status") != "error" and rec.get("check") == "ok" else 1


def _forward(args: argparse.Namespace) -> list[str]:
    """The options of this run, for the child processes of --pods all."""
    out = ["--time-limit", str(args.time_limit), "--scale", str(args.scale), "--seed", str(args.seed)]
    out += ["--nodes", args.nodes]
    if args.workers is not None:
        out += ["--workers", str(args.workers)]
    if args.data:
        out += ["--data", str(Path(args.data).resolve())]
    if args.out:
        out += ["--out", str(args.out.resolve())]
    return out


if __name__ == "__main__":
    sys.exit(main())

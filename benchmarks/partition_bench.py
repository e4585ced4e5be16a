"""The partitioned solve against the whole one: k = 1 (the plain solve), 2, 4 and 8 parts.

Per problem and per k, one whole `python -m benchmarks.partition_bench --solve` process under the
same time limit (`gpuplan.solve(..., partitions=k)`; k = 1 is the ordinary solve, the baseline).
The parent times each process and samples, every 0.1 s, the resident memory of the process and all
its descendants (the part solves run in worker processes): `peak_mb` is the largest such sum seen.
Problems: a rung of the size ladder (`benchmarks.size_ladder.ladder_problem`, `--tasks`) and openb
pod lists (`--openb default`; the data as `benchmarks.openbdata` finds it). The quality columns
are the whole problem's: placed tasks, objective, the whole program's bound and the gap.

    python -m benchmarks.partition_bench --tasks 10000 --time-limit 30 --out /tmp/partition-10k.jsonl
    python -m benchmarks.partition_bench --openb default --time-limit 30 --out /tmp/partition-openb.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.run_gap import cpu_model, git_commit, nproc

REPO = Path(__file__).resolve().parent.parent
KS = (1, 2, 4, 8)


class TreePeak:
    """The largest resident memory (VmRSS) of a process and its descendants together, read every
    0.1 s until it exits (a peak shorter than that may be missed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _tree_kb(self) -> int:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = Path(f"/proc/{entry}/status").read_text()
                fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
                pid = int(entry)
                children.setdefault(int(fields["PPid"]), []).append(pid)
                rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            todo.extend(children.get(pid, []))
        return total

    def _watch(self) -> None:
        while not self.done.is_set():
            self.mb = max(self.mb, self._tree_kb() / 1024)
            self.done.wait(0.1)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return round(self.mb, 1)


def run_child(cmd: list[str], kill_s: float) -> dict[str, Any]:
    """Run one solve process (it prints one JSON object); wall time and the tree's peak memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    peak = TreePeak(proc.pid)
    try:
        out, err = proc.communicate(timeout=kill_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": "killed", "wall_s": round(time.perf_counter() - t0, 3), "peak_mb": peak.stop()}
    wall = time.perf_counter() - t0
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = " | ".join(err.strip().splitlines()[-3:])[:400]
        res = {"status": "error", "note": f"rc {proc.returncode}: {tail}"}
    res["wall_s"] = round(wall, 3)
    res["peak_mb"] = peak.stop()
    return res


def solve_child(problem_file: str, limit: float, partitions: int, workers: int, seed: int) -> dict[str, Any]:
    """One solve of a problem file (a child process): the plan's numbers."""
    import gpuplan
    from gpuplan.api import parse_problem

    t0 = time.perf_counter()
    problem = parse_problem(json.loads(Path(problem_file).read_text(encoding="utf-8")))
    t_read = time.perf_counter() - t0
    t1 = time.perf_counter()
    plan = gpuplan.solve(problem, time_limit_s=limit, workers=workers, seed=seed, partitions=partitions)
    t_solve = time.perf_counter() - t1
    st = plan.stats
    gpus = {t.id: t.gpus * t.gpu_share for t in problem.tasks}  # type: ignore[union-attr]
    placed = {a.task for a in plan.assignments}
    parts = [st[f"part{i}_s"] for i in range(partitions) if f"part{i}_s" in st]
    return {
        "status": plan.status.value,
        "solver": plan.solver,
        "objective": plan.objective,
        "bound": plan.bound,
        "gap": plan.gap,
        "tasks": len(gpus),
        "placed": len(placed),
        "placed_gpus": round(sum(gpus[t] for t in placed), 3),
        "read_s": round(t_read, 3),
        "solve_s": round(t_solve, 3),
        "part_s": parts,
        "merged_placed": st.get("merged_placed"),
        "repair_placed": st.get("repair_placed"),
        "repair_s": st.get("repair_s"),
        "build_s": st.get("build_s"),
        "bound_s": st.get("bound_s"),
        "verify_s": st.get("verify_s"),
        "parts_missing": st.get("parts_missing"),
        "self_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def problems(args: argparse.Namespace, folder: Path) -> list[tuple[str, Path]]:
    """(name, file) of each problem asked for, written as JSON under `folder`."""
    out = []
    if args.tasks:
        from benchmarks.size_ladder import ladder_problem

        for n in [int(x) for x in args.tasks.split(",")]:
            path = folder / f"ladder-{n}.json"
            path.write_text(json.dumps(ladder_problem(n, seed=args.seed)), encoding="utf-8")
            out.append((f"ladder-{n}", path))
    if args.openb:
        from benchmarks import openbdata

        for name in args.openb.split(","):
            nodes, pods = openbdata.read_nodes(), openbdata.read_pods(name)
            problem, _ = openbdata.to_problem(nodes, pods, time_limit=args.time_limit, seed=args.seed)
            path = folder / f"openb-{name}.json"
            path.write_text(problem.model_dump_json(exclude_defaults=True), encoding="utf-8")
            out.append((f"openb-{name}", path))
    return out


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.2f}%"


def _cell(x: Any) -> str:
    return "—" if x is None else str(x)


def markdown(path: Path) -> str:
    """The report of a results file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    out = [
        "# Partitioned solve: k parts against the whole solve (k = 1)",
        "",
        f"- command: `{head['command']}`",
        f"- commit `{head['commit']}`, {head['date']}; {head['nproc']} cores ({head['cpu']})",
        f"- time limit {head['time_limit']:g} s, workers {head['workers']} (parts run at most that many at a"
        f" time), seed {head['seed']}; each run a whole process; peak MB: the process and its workers"
        " together",
        "",
        "| problem | k | status | placed | placed GPUs | objective | bound | gap | wall s | peak MB"
        " | parts s | merged | repair placed | repair s |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        cells = [
            r["problem"],
            str(r["k"]),
            str(r.get("status")),
            str(r.get("placed")),
            str(r.get("placed_gpus")),
            "—" if r.get("objective") is None else f"{r['objective']:,.6g}",
            "—" if r.get("bound") is None else f"{r['bound']:,.6g}",
            _pct(r.get("gap")),
            str(r.get("wall_s")),
            str(r.get("peak_mb")),
            ", ".join(f"{x:g}" for x in r.get("part_s") or []) or "—",
            _cell(r.get("merged_placed")),
            _cell(r.get("repair_placed")),
            _cell(r.get("repair_s")),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.partition_bench", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--tasks", default="", help="comma-separated size-ladder rungs (tasks)")
    ap.add_argument("--openb", default="", help="comma-separated openb pod lists (e.g. default)")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="numbers of parts (1: the whole solve)")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="results file (.jsonl); the report goes beside it (.md)")
    ap.add_argument("--solve", metavar="PROBLEM", help="run one solve (a child)")
    ap.add_argument("--partitions", type=int, default=1, help="(with --solve) parts of that one run")
    args = ap.parse_args(argv)
    if args.solve:
        res = solve_child(args.solve, args.time_limit, args.partitions, args.workers, args.seed)
        sys.stdout.write(json.dumps(res) + "\n")
        return 0
    head = {
        "command": "python -m benchmarks.partition_bench " + " ".join(sys.argv[1:] if argv is None else argv),
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
        for name, path in problems(args, Path(tmp)):
            for k in [int(x) for x in args.ks.split(",")]:
                cmd = [sys.executable, "-m", "benchmarks.partition_bench", "--solve", str(path)]
                cmd += ["--time-limit", f"{args.time_limit:g}", "--partitions", str(k)]
                cmd += ["--workers", str(args.workers), "--seed", str(args.seed)]
                res = {"problem": name, "k": k, **run_child(cmd, 3 * args.time_limit + 120)}
                rows.append(res)
                print(
                    f"  {name} k={k} {res.get('status')} placed {res.get('placed')}"
                    f" gap {_pct(res.get('gap'))}"
                    f" wall {res.get('wall_s')} s peak {res.get('peak_mb')} MB {res.get('note', '')}",
                    flush=True,
                )
                if args.out:  # written as it goes: a long run leaves what it has
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(
                        "\n".join(json.dumps(x) for x in [head, *rows]) + "\n", encoding="utf-8"
                    )
                    args.out.with_suffix(".md").write_text(markdown(args.out), encoding="utf-8")
    if args.out:
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

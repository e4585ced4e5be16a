"""Flexible job shop benchmark: gpuplan against a plain CP-SAT model, same limit, same cores.

    python -m benchmarks.fjsp [--names mk01,k1] --time-limit 30 --workers 2 --seed 0 \
        --out benchmarks/results/fjsp-30s.jsonl
    python -m benchmarks.fjsp --markdown benchmarks/results/fjsp-30s.jsonl
    python -m benchmarks.fjsp --across RESULTS_SEED0.jsonl RESULTS_SEED1.jsonl ...

Each instance (`benchmarks.fjspdata`: a job is a chain of tasks, a machine one GPU of its own type;
`--scale 1,2,4` adds k disjoint copies of it, whose optimal makespan is the original's)
is solved by `gpuplan solve` on its problem JSON, and by the model a user would write with CP-SAT
(`python -m benchmarks.fjsp cpsat FILE T W SEED`: one optional interval per (operation, machine),
exactly one per operation, NoOverlap per machine, job order, minimise the makespan; no hint and no
tuning beyond the limit, workers and seed; the model of OR-Tools' flexible job shop sample, written
here from its description). Every method is a separate process timed as a whole and killed after
max(2T, T + 30) s. Each schedule is checked here, independently of both solvers: every operation
once on one of its machines for its time, job order, one operation at a time per machine. Gaps are
to the listed best-known makespan (`instances.json`); a makespan below it is flagged as a new best.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.baselines import kill_after, run_timed
from benchmarks.fjspdata import FjspInstance, load_instances, read_fjsp, scaled, to_problem
from benchmarks.run_gap import cpu_model, git_commit, nproc

REPO = Path(__file__).resolve().parent.parent
METHODS = ("gpuplan", "cpsat")
EPS = 1e-6


def solve_plain_cpsat(inst: FjspInstance, time_limit: float, workers: int, seed: int) -> dict[str, Any]:
    """The plain CP-SAT flexible job shop model (module docstring); its schedule as
    {op id: [machine, start, end]}."""
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    model = cp_model.CpModel()
    horizon = sum(max(p for _, p in op) for job in inst.jobs for op in job)
    per_machine: dict[int, list[Any]] = {m: [] for m in range(inst.machines)}
    starts, ends, choice = {}, {}, {}
    for j, job in enumerate(inst.jobs):
        for o, alts in enumerate(job):
            key = f"j{j}o{o}"
            s = model.new_int_var(0, horizon, f"s_{key}")
            e = model.new_int_var(0, horizon, f"e_{key}")
            lits = []
            for m, p in alts:
                lit = model.new_bool_var(f"x_{key}_{m}")
                per_machine[m].append(model.new_optional_fixed_size_interval_var(s, p, lit, f"i_{key}_{m}"))
                model.add(e == s + p).only_enforce_if(lit)
                lits.append((lit, m))
            model.add_exactly_one(lit for lit, _ in lits)
            if o:
                model.add(s >= ends[f"j{j}o{o - 1}"])
            starts[key], ends[key], choice[key] = s, e, lits
    for intervals in per_machine.values():
        model.add_no_overlap(intervals)
    makespan = model.new_int_var(0, horizon, "makespan")
    model.add_max_equality(makespan, list(ends.values()))
    model.minimize(makespan)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    code = solver.solve(model)
    names = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible", cp_model.INFEASIBLE: "infeasible"}
    status = names.get(code, "unknown")
    schedule = None
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        schedule = {
            k: [
                next(m for lit, m in choice[k] if solver.value(lit)),
                solver.value(starts[k]),
                solver.value(ends[k]),
            ]
            for k in starts
        }
    return {
        "method": "cpsat",
        "status": status,
        "objective": float(solver.objective_value) if schedule else None,
        "bound": float(solver.best_objective_bound) if schedule or code == cp_model.UNKNOWN else None,
        "solve_s": round(time.perf_counter() - t0, 3),
        "schedule": schedule,
    }


def check_schedule(inst: FjspInstance, schedule: dict[str, list[float]] | None) -> tuple[str, float | None]:
    """('ok', makespan) when the schedule keeps every rule, else ('BAD: why', None)."""
    if schedule is None:
        return "no schedule", None
    busy: dict[int, list[tuple[float, float, str]]] = {}
    end_of: dict[str, float] = {}
    for j, job in enumerate(inst.jobs):
        for o, alts in enumerate(job):
            key = f"j{j}o{o}"
            if key not in schedule:
                return f"BAD: {key} not scheduled", None
            m, s, e = schedule[key]
            times = dict(alts)
            if m not in times:
                return f"BAD: {key} on machine {m}, which cannot run it", None
            if abs(e - s - times[m]) > EPS:
                return f"BAD: {key} runs {e - s:g}, its time on machine {m} is {times[m]}", None
            if s < -EPS or (o and s < end_of[f"j{j}o{o - 1}"] - EPS):
                return f"BAD: {key} starts before its job's previous operation ends", None
            end_of[key] = e
            busy.setdefault(m, []).append((s, e, key))
    for m, spans in busy.items():
        spans.sort()
        for (_, e1, a), (s2, _, b) in itertools.pairwise(spans):
            if s2 < e1 - EPS:
                return f"BAD: {a} and {b} overlap on machine {m}", None
    return "ok", max(end_of.values(), default=0.0)


def _gpuplan_schedule(plan: dict[str, Any]) -> dict[str, list[float]] | None:
    """{op id: [machine, start, end]} from a plan's assignments (GPU g<m> is machine m)."""
    rows = plan.get("assignments") or []
    if not rows or any(a.get("start_h") is None for a in rows):
        return None
    return {a["task"]: [int(a["gpus"][0][1:]), a["start_h"], a["end_h"]] for a in rows}


def run_instance(inst: FjspInstance, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Both methods on one instance, each checked; one JSON-able row."""
    path = folder / f"{inst.name}.json"
    path.write_text(json.dumps(to_problem(inst, args.time_limit, args.workers)), encoding="utf-8")
    row: dict[str, Any] = {
        "instance": inst.name,
        "jobs": len(inst.jobs),
        "machines": inst.machines,
        "operations": inst.operations,
        "optimum": inst.optimum,
        "lower": inst.lower,
        "upper": inst.upper,
        "time_limit": args.time_limit,
    }
    for method in args.methods:
        if method == "gpuplan":
            cmd = [sys.executable, "-m", "gpuplan.cli", "solve", str(path)]
            cmd += [
                "--time-limit",
                f"{args.time_limit:g}",
                "--workers",
                str(args.workers),
                "--seed",
                str(args.seed),
            ]
        else:
            cmd = [sys.executable, "-m", "benchmarks.fjsp", "cpsat", str(path.with_suffix(".txt"))]
            cmd += [f"{args.time_limit:g}", str(args.workers), str(args.seed)]
            path.with_suffix(".txt").write_text(_as_text(inst), encoding="ascii")
        res = run_timed(cmd, args.time_limit, cwd=REPO)
        schedule = _gpuplan_schedule(res) if method == "gpuplan" else res.get("schedule")
        check, makespan = check_schedule(inst, schedule)
        upper = inst.upper
        row[method] = {
            "status": res.get("status"),
            "makespan": makespan,
            "reported": res.get("objective"),
            "bound": res.get("bound"),
            "gap_pct": None if makespan is None or not upper else 100.0 * (makespan - upper) / upper,
            "new_best": makespan is not None and upper is not None and makespan < upper - EPS,
            "wall_s": res.get("wall_s"),
            "peak_mb": res.get("peak_mb"),
            "check": check,
            "note": res.get("note", "") or res.get("message", ""),
        }
        print(
            f"  {inst.name:6s} {method:8s} {row[method]['status']!s:10s} makespan {makespan} bound "
            f"{res.get('bound')} ({res.get('wall_s')} s) {check}",
            flush=True,
        )
    return row


def _as_text(inst: FjspInstance) -> str:
    """The instance back in the data's text format (what the plain model reads)."""
    lines = [f"{len(inst.jobs)} {inst.machines}"]
    for job in inst.jobs:
        parts = [str(len(job))]
        for alts in job:
            parts.append(str(len(alts)))
            parts += [f"{m} {p}" for m, p in alts]
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def summary(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> list[str]:
    """The figures the targets speak of."""
    out = []
    for m in methods:
        rs = [r[m] for r in rows if m in r]
        gaps = [r["gap_pct"] for r in rs if r["gap_pct"] is not None]
        proven = sum(r["status"] == "optimal" for r in rs)
        bounded = sum(r["bound"] is not None for r in rs)
        new_best = sum(bool(r["new_best"]) for r in rs)
        out.append(
            f"- {m}: {len(rs)} instances, {sum(r['check'] == 'ok' for r in rs)} checked ok, "
            f"mean gap to best known {sum(gaps) / len(gaps) if gaps else float('nan'):+.2f}%, "
            f"max {max(gaps, default=float('nan')):+.2f}%, proven optimal {proven}, "
            f"bound in {bounded}, new best {new_best}, "
            f"max wall {max((r['wall_s'] or 0 for r in rs), default=0):.1f} s"
        )
    if set(METHODS) <= set(methods):
        worse = [
            f"{r['instance']} ({r['gpuplan']['makespan']} vs {r['cpsat']['makespan']})"
            for r in rows
            if r["cpsat"]["makespan"] is not None
            and (r["gpuplan"]["makespan"] is None or r["gpuplan"]["makespan"] > r["cpsat"]["makespan"] + EPS)
        ]
        unproven = [
            r["instance"]
            for r in rows
            if r["cpsat"]["status"] == "optimal" and r["gpuplan"]["status"] != "optimal"
        ]
        out.append(f"- gpuplan worse than plain CP-SAT on {len(worse)}: {', '.join(worse) or 'none'}")
        out.append(f"- proven optimal by plain CP-SAT but not by gpuplan: {', '.join(unproven) or 'none'}")
    return out


def markdown(path: Path) -> str:
    """The report of a results file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    head = json.loads(lines[0])
    rows = [json.loads(x) for x in lines[1:]]
    methods = tuple(m for m in METHODS if any(m in r for r in rows))
    out = [
        "# Flexible job shop: gpuplan against plain CP-SAT",
        "",
        f"- command: `{head['command']}`",
        f"- commit `{head['commit']}`, {head['date']}; {head['nproc']} cores ({head['cpu']})",
        f"- time limit {head['time_limit']:g} s, workers {head['workers']}, seed {head['seed']}; each method "
        f"a separate process timed as a whole (killed after {kill_after(head['time_limit']):g} s); "
        "every schedule checked by this benchmark; MB: the process's peak resident memory (VmHWM, read"
        " every 0.1 s)",
        "",
        *summary(rows, methods),
        "",
    ]
    cols = ["instance", "ops", "best known"]
    for m in methods:
        cols += [f"{m} makespan", "gap %", "bound", "status", "time s", "MB"]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "|".join(["---"] + ["--:"] * (len(cols) - 1)) + "|")
    for r in rows:
        known = str(r["optimum"]) if r["optimum"] is not None else f"{r['lower']}..{r['upper']}"
        cells = [r["instance"], str(r["operations"]), known]
        for m in methods:
            x = r[m]
            ms = (
                "—"
                if x["makespan"] is None
                else f"{x['makespan']:g}" + (" (new best)" if x["new_best"] else "")
            )
            cells += [
                ms,
                "—" if x["gap_pct"] is None else f"{x['gap_pct']:+.2f}",
                "—" if x["bound"] is None else f"{x['bound']:g}",
                str(x["status"]) + ("" if x["check"] in ("ok", "no schedule") else f" {x['check']}"),
                "—" if x["wall_s"] is None else f"{x['wall_s']:.1f}",
                "—" if x.get("peak_mb") is None else f"{x['peak_mb']:.0f}",
            ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def across(paths: list[Path]) -> str:
    """Results files of one limit at several seeds, side by side: per instance in every file, each
    method's makespan per seed (* where proven optimal), and the targets' comparisons per seed."""
    runs = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        runs.append((json.loads(lines[0]), {r["instance"]: r for r in map(json.loads, lines[1:])}))
    names = [n for n in runs[0][1] if all(n in rows for _, rows in runs)]
    seeds = [str(head["seed"]) for head, _ in runs]
    out = [
        f"## Across seeds {', '.join(seeds)} (instances in every file; * proven optimal)",
        "",
        *(f"- seed {head['seed']}: `{head['command']}`, commit `{head['commit']}`" for head, _ in runs),
        "",
        "| instance | gpuplan | plain CP-SAT | median, gpuplan vs plain | gpuplan worse at seeds "
        "| proved by plain only at seeds |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    behind: list[str] = []  # instances where gpuplan's median makespan is above plain CP-SAT's

    def cell(x: dict[str, Any]) -> str:
        return (
            "—" if x["makespan"] is None else f"{x['makespan']:g}" + ("*" if x["status"] == "optimal" else "")
        )

    for n in names:
        rows = [rows[n] for _, rows in runs]
        worse = [
            s
            for s, r in zip(seeds, rows, strict=True)
            if r["cpsat"]["makespan"] is not None
            and (r["gpuplan"]["makespan"] is None or r["gpuplan"]["makespan"] > r["cpsat"]["makespan"] + EPS)
        ]
        proof = [
            s
            for s, r in zip(seeds, rows, strict=True)
            if r["cpsat"]["status"] == "optimal" and r["gpuplan"]["status"] != "optimal"
        ]
        med = {
            m: statistics.median(math.inf if r[m]["makespan"] is None else r[m]["makespan"] for r in rows)
            for m in METHODS
        }
        if med["gpuplan"] > med["cpsat"] + EPS:
            behind.append(f"{n} ({med['gpuplan']:g} vs {med['cpsat']:g})")
        out.append(
            f"| {n} | {' / '.join(cell(r['gpuplan']) for r in rows)} | "
            f"{' / '.join(cell(r['cpsat']) for r in rows)} | {med['gpuplan']:g} vs {med['cpsat']:g} | "
            f"{', '.join(worse) or '—'} | {', '.join(proof) or '—'} |"
        )
    out.append("")
    out.append(
        f"- by the median over the seeds, gpuplan worse than plain CP-SAT on {len(behind)}: "
        + (", ".join(behind) or "none")
    )
    for head, rows in runs:
        lines = summary([rows[n] for n in names], METHODS)
        out.append(f"- seed {head['seed']}: " + "; ".join(x.removeprefix("- ") for x in lines[-2:]))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "cpsat":  # the plain model's own process
        path, limit, workers, seed = argv[1], float(argv[2]), int(argv[3]), int(argv[4])
        sys.stdout.write(json.dumps(solve_plain_cpsat(read_fjsp(path), limit, workers, seed)) + "\n")
        return 0
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fjsp", description=__doc__.splitlines()[0])
    ap.add_argument("--names", help="comma-separated instance names (default: all)")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", default="1", help="comma-separated copies of each instance, e.g. 1,2,4")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--data", type=Path, help="the shared folder (default: <repo>/../shared)")
    ap.add_argument("--out", type=Path, help="results file (.jsonl); the report goes beside it (.md)")
    ap.add_argument("--markdown", type=Path, help="print the report of a results file and stop")
    ap.add_argument(
        "--across", type=Path, nargs="+", help="print results files of several seeds side by side and stop"
    )
    args = ap.parse_args(argv)
    if args.across:
        sys.stdout.write(across(args.across))
        return 0
    if args.markdown:
        sys.stdout.write(markdown(args.markdown))
        return 0
    args.methods = tuple(m for m in args.methods.split(",") if m)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        ap.error(f"--methods: unknown {', '.join(sorted(unknown))} (choose {', '.join(METHODS)})")
    base = load_instances(args.data, args.names.split(",") if args.names else None)
    insts = [scaled(i, int(k)) for k in args.scale.split(",") for i in base]
    head = {
        "command": "python -m benchmarks.fjsp " + " ".join(argv),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": nproc(),
        "cpu": cpu_model(),
        "time_limit": args.time_limit,
        "workers": args.workers,
        "seed": args.seed,
        "scale": args.scale,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for inst in insts:
            rows.append(run_instance(inst, args, Path(tmp)))
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text("\n".join(json.dumps(x) for x in [head, *rows]) + "\n", encoding="utf-8")
    if args.out:
        args.out.with_suffix(".md").write_text(markdown(args.out), encoding="utf-8")
        print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    print("\n".join(summary(rows, args.methods)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

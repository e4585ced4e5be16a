"""Run gpuplan and the plain baselines on GAP instances; write a CSV and a markdown report.

    python -m benchmarks.run_gap --set orlib-small --time-limit 5 --workers 2 --seed 0
    python -m benchmarks.run_gap --set d10400,e201600 --time-limit 30 --baselines cpsat,cbc
    python -m benchmarks.run_gap --random cde --count 3 --sizes 20x400 --time-limit 30

Every method runs as its own process on the same matrix JSON file, one after the other, and is timed
as a whole (start-up, reading, solving, writing); a process still running after max(2 T, T + 30) s
is killed. Each solution is checked here: feasibility and cost are recomputed from the assignment.
See benchmarks/README.md for the protocol and the meaning of each column.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks import gapdata
from benchmarks.baselines import kill_after, run_baseline, run_timed

REPO = gapdata.REPO_ROOT
METHOD_LABEL = {"gpuplan": "gpuplan", "cpsat": "plain-cpsat", "cbc": "plain-cbc"}
WITHIN = 0.1  # percent: "within 0.1% of the reference"
EPS = 1e-6


# --------------------------------------------------------------------------------------------------
# Environment


def git_commit() -> str:
    """Short commit hash, '+dirty' when tracked or new files (other than results) differ."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = [ln for ln in status.splitlines() if ln[3:] and not ln[3:].startswith("benchmarks/results/")]
    return head + ("+dirty" if changed else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.CalledProcessError):
        import os

        return os.cpu_count() or 0


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------------------------------
# Running one instance


def run_gpuplan(matrix_file: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "gpuplan.cli", "solve", matrix_file]
    cmd += ["--time-limit", f"{args.time_limit:g}", "--workers", str(args.workers), "--seed", str(args.seed)]
    if args.solver:
        cmd += ["--solver", args.solver]
    res = run_timed(cmd, args.time_limit, cwd=REPO)
    if res.get("rc") not in (None, 0, 3, 4) and res["status"] != "error":
        res["note"] = (res.get("note", "") + f" exit code {res['rc']}").strip()
    return res


def check_solution(inst: gapdata.GapInstance, method: str, res: dict) -> dict:
    """Recompute the cost of the returned assignment; sets objective (verified) and check."""
    out = {
        "status": res.get("status", "error"),
        "reported": res.get("objective"),
        "objective": None,
        "bound": res.get("bound"),
        "wall_s": res.get("wall_s"),
        "check": "",
        "note": res.get("note", "") or "",
    }
    if method == "gpuplan":
        out["plan_gap"] = res.get("gap")
        out["detail"] = f"{res.get('solver', '')}: {res.get('solver_reason', '')}".strip(": ")
    else:
        out["detail"] = res.get("detail", "")
    if out["status"] not in ("optimal", "feasible"):
        out["check"] = "no solution"
        return out
    assign = gapdata.assignment_from_plan(inst, res) if method == "gpuplan" else res.get("assignment")
    if assign is None:
        out["check"] = "BAD: assignment missing or incomplete"
        return out
    cost, feasible, problems = gapdata.evaluate(inst, assign)
    if not feasible:
        out["check"] = "BAD: infeasible (" + "; ".join(problems[:3]) + ")"
        return out
    if out["reported"] is None or abs(float(out["reported"]) - cost) > EPS:
        out["check"] = f"BAD: reported {out['reported']} but the assignment costs {cost}"
    else:
        out["check"] = "ok"
    out["objective"] = cost
    return out


def gap_pct(obj: float | None, ref: float | None) -> float | None:
    if obj is None or ref is None or ref == 0:
        return None
    return 100.0 * (obj - ref) / ref


def solve_instance(inst: gapdata.GapInstance, args: argparse.Namespace, methods: list[str]) -> dict:
    """Run every method on one instance; returns the result row (dict of dicts)."""
    bk = gapdata.best_known_for(inst)
    with tempfile.TemporaryDirectory(prefix="gapbench") as tmp:
        path = Path(tmp) / f"{inst.name}.json"
        path.write_text(json.dumps(gapdata.to_matrix_json(inst)), encoding="utf-8")
        results: dict[str, dict] = {}
        for method in methods:
            if method == "gpuplan":
                raw = run_gpuplan(str(path), args)
            else:
                raw = run_baseline(method, str(path), args.time_limit, args.workers, args.seed)
            results[method] = check_solution(inst, method, raw)
            r = results[method]
            print(
                f"    {METHOD_LABEL[method]:<12} {_fmt(r['objective']):>10}  {r['status']:<10} "
                f"{r['wall_s']:7.2f} s  {r['check']}",
                file=sys.stderr,
                flush=True,
            )
    found = [r["objective"] for r in results.values() if r["objective"] is not None]
    best_found = min(found) if found else None
    if bk is not None:
        ref, ref_kind, proven = float(bk[0]), "best known", bk[1]
    else:
        ref, ref_kind, proven = best_found, "best found", False
    for r in results.values():
        r["gap_pct"] = gap_pct(r["objective"], ref)
        notes = [r["note"]] if r["note"] else []
        b = r["bound"]
        if b is not None:
            if best_found is not None and b > best_found + EPS:
                notes.append(f"BOUND {b:g} > a verified solution ({best_found:g})")
            elif bk is not None and proven and b > bk[0] + EPS:
                notes.append(f"BOUND {b:g} > proven optimum {bk[0]}")
        if bk is not None and r["objective"] is not None and r["objective"] < bk[0] - EPS:
            notes.append(f"better than best known {bk[0]} (new best?)")
        if r["wall_s"] is not None and r["wall_s"] > 1.1 * args.time_limit + 1.0:
            notes.append(f"over the time limit ({r['wall_s']:.1f} s > 1.1 x {args.time_limit:g} + 1 s)")
        r["note"] = "; ".join(notes)
    return {
        "instance": inst.name,
        "alias": gapdata.alias(inst.name) or "",
        "m": inst.m,
        "n": inst.n,
        "ref": ref,
        "ref_kind": ref_kind,
        "proven": proven,
        "results": results,
    }


# --------------------------------------------------------------------------------------------------
# Reporting


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if digits == 0 and float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.{digits or 2}f}"


def _fmt_gap(g: float | None) -> str:
    return "—" if g is None else f"{g:+.2f}"


def summarize(rows: list[dict], methods: list[str], time_limit: float) -> dict:
    """Per-method summary plus the list of instances where gpuplan is worse than a baseline."""
    out: dict = {"methods": {}, "worse": [], "better": 0}
    for m in methods:
        rs = [row["results"][m] for row in rows if m in row["results"]]
        gaps = [r["gap_pct"] for r in rs if r["gap_pct"] is not None]
        walls = [r["wall_s"] for r in rs if r["wall_s"] is not None]
        out["methods"][m] = {
            "instances": len(rs),
            "solved": sum(r["objective"] is not None for r in rs),
            "mean_gap": sum(gaps) / len(gaps) if gaps else None,
            "max_gap": max(gaps) if gaps else None,
            "within": sum(g <= WITHIN + EPS for g in gaps),
            "optimal": sum(r["status"] == "optimal" for r in rs),
            "max_wall": max(walls) if walls else None,
            "over_limit": sum(w > 1.1 * time_limit + 1.0 for w in walls),
            "killed": sum(r["status"] == "killed" for r in rs),
            "errors": sum(r["status"] == "error" or r["check"].startswith("BAD") for r in rs),
        }
    if "gpuplan" in methods:
        for row in rows:
            g = row["results"].get("gpuplan")
            others = {m: r for m, r in row["results"].items() if m != "gpuplan"}
            if g is None or not others:
                continue
            mine = g["objective"]
            beaten = [
                f"{METHOD_LABEL[m]} {_fmt(r['objective'])}"
                for m, r in others.items()
                if r["objective"] is not None and (mine is None or r["objective"] < mine - EPS)
            ]
            if beaten:
                out["worse"].append(f"{row['instance']}: gpuplan {_fmt(mine)} vs " + ", ".join(beaten))
            elif mine is not None and all(
                r["objective"] is None or mine < r["objective"] - EPS for r in others.values()
            ):
                out["better"] += 1
    return out


CSV_FIELDS = ["instance", "alias", "m", "n", "reference", "reference_kind", "reference_proven"]
METHOD_FIELDS = [
    "objective",
    "gap_pct",
    "bound",
    "status",
    "wall_s",
    "reported_objective",
    "check",
    "note",
    "detail",
]


def write_csv(path: Path, rows: list[dict], methods: list[str]) -> None:
    fields = list(CSV_FIELDS)
    for m in methods:
        fields += [f"{METHOD_LABEL[m]}_{f}" for f in METHOD_FIELDS]
        if m == "gpuplan":
            fields += ["gpuplan_plan_gap"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for row in rows:
            rec = {
                "instance": row["instance"],
                "alias": row["alias"],
                "m": row["m"],
                "n": row["n"],
                "reference": _fmt(row["ref"]),
                "reference_kind": row["ref_kind"],
                "reference_proven": "yes" if row["proven"] else "no",
            }
            for m in methods:
                r = row["results"].get(m)
                if r is None:
                    continue
                p = METHOD_LABEL[m] + "_"
                rec[p + "objective"] = "" if r["objective"] is None else r["objective"]
                rec[p + "gap_pct"] = "" if r["gap_pct"] is None else f"{r['gap_pct']:.4f}"
                rec[p + "bound"] = "" if r["bound"] is None else r["bound"]
                rec[p + "status"] = r["status"]
                rec[p + "wall_s"] = r["wall_s"]
                rec[p + "reported_objective"] = "" if r["reported"] is None else r["reported"]
                rec[p + "check"] = r["check"]
                rec[p + "note"] = r["note"]
                rec[p + "detail"] = r.get("detail", "")
                if m == "gpuplan":
                    rec["gpuplan_plan_gap"] = "" if r.get("plan_gap") is None else r["plan_gap"]
            w.writerow(rec)


def write_md(path: Path, rows: list[dict], methods: list[str], header: dict, done: bool) -> None:
    lim = header["time_limit"]
    lines = [f"# GAP benchmark: {header['what']}", ""]
    if not done:
        lines += [f"**Incomplete: {len(rows)} of {header['total']} instances.**", ""]
    lines += [
        f"- command: `{header['command']}`",
        f"- commit: `{header['commit']}`; date: {header['date']}",
        f"- machine: {header['nproc']} cores ({header['cpu']}), {header['platform']}",
        f"- python {header['python']}; gpuplan {header['gpuplan']}, ortools {header['ortools']}, "
        f"pulp {header['pulp']}",
        f"- time limit {lim:g} s, workers {header['workers']}, seed {header['seed']}; every method is a "
        f"separate process timed as a whole, killed after {kill_after(lim):g} s",
        f"- elapsed: {header.get('elapsed', 0):.0f} s",
        "",
    ]
    head = ["instance", "m×n", header["ref_label"]]
    for m in methods:
        lab = METHOD_LABEL[m]
        head += [f"{lab} obj", "gap %", "bound", "status", "time s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")
    for row in rows:
        name = row["instance"] + (f" ({row['alias']})" if row["alias"] else "")
        starred = row["ref_kind"] == "best known" and not row["proven"]
        ref = _fmt(row["ref"]) + ("*" if starred else "")
        cells = [name, f"{row['m']}×{row['n']}", ref]
        for m in methods:
            r = row["results"].get(m)
            if r is None:
                cells += [""] * 5
                continue
            flag = " ⚠" if r["check"].startswith("BAD") or "BOUND" in r["note"] else ""
            cells += [
                _fmt(r["objective"]) + flag,
                _fmt_gap(r["gap_pct"]),
                _fmt(r["bound"], 1)
                if r["bound"] is not None and not float(r["bound"]).is_integer()
                else _fmt(r["bound"]),
                r["status"],
                "—" if r["wall_s"] is None else f"{r['wall_s']:.2f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{header['ref_note']}", ""]
    s = summarize(rows, methods, lim)
    lines += ["## Summary", ""]
    lines.append(
        "| method | solved | mean gap % | max gap % | within 0.1% | optimal | max time s | "
        "over limit | killed | errors |"
    )
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for m in methods:
        d = s["methods"][m]
        lines.append(
            f"| {METHOD_LABEL[m]} | {d['solved']}/{d['instances']} | {_fmt_gap(d['mean_gap'])} | "
            f"{_fmt_gap(d['max_gap'])} | {d['within']} | {d['optimal']} | "
            f"{_fmt(d['max_wall'], 2)} (limit {lim:g}) | {d['over_limit']} | {d['killed']} | {d['errors']} |"
        )
    lines.append("")
    if "gpuplan" in methods and len(methods) > 1:
        lines.append(
            f"gpuplan worse than a baseline on {len(s['worse'])} of {len(rows)} instances; "
            f"strictly better than every baseline on {s['better']}."
        )
        lines += [f"- {w}" for w in s["worse"]]
        lines.append("")
    notes = [
        f"- {row['instance']} {METHOD_LABEL[m]}: "
        + "; ".join(x for x in (r["check"], r["note"], r.get("detail", "")) if x)
        for row in rows
        for m, r in row["results"].items()
        if r["note"] or r["check"].startswith("BAD")
    ]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def print_row(row: dict, methods: list[str]) -> None:
    parts = [f"{row['instance']} ref {_fmt(row['ref'])}"]
    for m in methods:
        r = row["results"][m]
        parts.append(f"{METHOD_LABEL[m]} {_fmt(r['objective'])} ({_fmt_gap(r['gap_pct'])}%)")
    print("    => " + " | ".join(parts), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Main


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        mo = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", part)
        if not mo:
            raise argparse.ArgumentTypeError(f"bad size {part!r}: expected MxN, e.g. 20x400")
        out.append((int(mo.group(1)), int(mo.group(2))))
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run_gap", description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--set",
        help="orlib-small, orlib-large, yagiura, yagiura-big, or a comma list of names "
        "(gap1, gap1-3, gapd-6, d20200, e10400, ...)",
    )
    src.add_argument("--random", metavar="KINDS", help="generate fresh instances of these types, e.g. cde")
    ap.add_argument("--count", type=int, default=1, help="random instances per type and size (default 1)")
    ap.add_argument("--sizes", type=parse_sizes, default=[(20, 400)], help="MxN list for --random")
    ap.add_argument("--instance-seed", type=int, default=1, help="first generator seed for --random")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per method (default 10)")
    ap.add_argument("--workers", type=int, default=2, help="worker threads per method (default 2)")
    ap.add_argument("--seed", type=int, default=0, help="solver seed (default 0)")
    ap.add_argument("--baselines", default="cpsat,cbc", help="comma list of cpsat, cbc; or none")
    ap.add_argument("--no-gpuplan", action="store_true", help="run the baselines only")
    ap.add_argument("--solver", choices=["auto", "greedy", "cpsat", "milp"], help="gpuplan --solver")
    ap.add_argument("--out", help="output path without extension (default benchmarks/results/<auto>)")
    ap.add_argument("--data", help="shared data directory (default <repo>/../shared/data or $GPUPLAN_SHARED)")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.time_limit <= 0 or args.workers <= 0:
        print("run_gap: --time-limit and --workers must be positive", file=sys.stderr)
        return 2
    spec = args.baselines.strip()
    baselines = [] if spec in ("", "none") else [b.strip() for b in spec.split(",")]
    bad = [b for b in baselines if b not in ("cpsat", "cbc")]
    if bad:
        print(f"run_gap: unknown baseline(s) {', '.join(bad)} (use cpsat, cbc or none)", file=sys.stderr)
        return 2
    methods = ([] if args.no_gpuplan else ["gpuplan"]) + baselines
    if not methods:
        print("run_gap: nothing to run", file=sys.stderr)
        return 2
    if args.data:
        gapdata.set_data_dir(args.data)

    if args.set:
        try:
            gapdata.data_dir()
            insts = gapdata.instances(args.set)
        except (gapdata.DataMissingError, ValueError) as exc:
            print(f"run_gap: {exc}", file=sys.stderr)
            return 2
        what = args.set
    else:
        kinds = args.random.lower()
        if not kinds or set(kinds) - set("cde") or args.count <= 0:
            print("run_gap: --random takes letters from cde, and --count must be positive", file=sys.stderr)
            return 2
        insts = [
            gapdata.random_instance(k, m, n, args.instance_seed + s)
            for k in kinds
            for (m, n) in args.sizes
            for s in range(args.count)
        ]
        sizes = ",".join(f"{m}x{n}" for m, n in args.sizes)
        what = f"random {kinds} {sizes} x{args.count} (generator seeds from {args.instance_seed})"
    if not insts:
        print("run_gap: no instances selected", file=sys.stderr)
        return 2

    stamp = datetime.now(UTC)
    if args.out:
        out = Path(args.out)
        if out.suffix in (".csv", ".md"):
            out = out.with_suffix("")
    else:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", args.set or f"random-{args.random}")[:40].strip("-")
        out = REPO / "benchmarks" / "results" / f"gap-{slug}-t{args.time_limit:g}-{stamp:%Y%m%d-%H%M%S}"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "what": what,
        "total": len(insts),
        "command": "python -m benchmarks.run_gap " + shlex.join(argv),
        "commit": git_commit(),
        "date": stamp.strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": nproc(),
        "cpu": cpu_model(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "gpuplan": _version("gpuplan"),
        "ortools": _version("ortools"),
        "pulp": _version("pulp"),
        "time_limit": args.time_limit,
        "workers": args.workers,
        "seed": args.seed,
        "ref_label": "best known" if args.set else "best found",
        "ref_note": (
            "Gap % = (objective − best known) / best known, MIN sense; * marks a best known value not "
            "proven optimal. Objectives are recomputed from each returned assignment; ⚠ marks a "
            "failed check (see Notes)."
            if args.set
            else "No best known values: gap % is measured against the best objective found by any "
            "method in this run. Objectives are recomputed from each returned assignment."
        ),
    }
    print(
        f"run_gap: {len(insts)} instance(s), methods {', '.join(METHOD_LABEL[m] for m in methods)}, "
        f"limit {args.time_limit:g} s, workers {args.workers}, seed {args.seed}, {header['nproc']} cores",
        file=sys.stderr,
    )
    rows: list[dict] = []
    t0 = time.perf_counter()
    done = False
    try:
        for k, inst in enumerate(insts, 1):
            bk = gapdata.best_known_for(inst)
            print(
                f"[{k}/{len(insts)}] {inst.name} {inst.size} best known {bk[0] if bk else '—'}",
                file=sys.stderr,
                flush=True,
            )
            row = solve_instance(inst, args, methods)
            rows.append(row)
            print_row(row, methods)
            header["elapsed"] = time.perf_counter() - t0
            write_csv(out.with_suffix(".csv"), rows, methods)
            write_md(out.with_suffix(".md"), rows, methods, header, done=False)
        done = True
    except KeyboardInterrupt:
        print("run_gap: interrupted; writing what is done", file=sys.stderr)
    header["elapsed"] = time.perf_counter() - t0
    write_csv(out.with_suffix(".csv"), rows, methods)
    write_md(out.with_suffix(".md"), rows, methods, header, done=done)
    print(f"run_gap: wrote {out}.csv and {out}.md ({header['elapsed']:.0f} s)", file=sys.stderr)
    return 0 if done else 130


if __name__ == "__main__":
    sys.exit(main())

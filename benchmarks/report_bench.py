"""The report of a plan for thousands of GPUs: page size and load time in headless Chromium.

The openb trace's default pod list on its 1213 GPU nodes (benchmarks/openbdata.py) is solved at a
short time limit, `gpuplan report` renders the plan, and Chromium opens it headless: the wall time of
`chromium --headless --dump-dom` (load) and of `--screenshot` (load, layout and paint) on the report
against the same on an empty page (the baseline, in the same command: process start-up), and the
page's own load time (performance.now() at its load event, written into the page by its script).

    .venv/bin/python benchmarks/report_bench.py [--time-limit 10] [--repeat 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpuplan
from benchmarks import openbdata
from benchmarks.run_gap import cpu_model, git_commit


def open_page(chromium: str, page: Path) -> tuple[float, str, str]:
    """(wall seconds, DOM after load, stderr) of one headless load of `page`."""
    started = time.perf_counter()
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return time.perf_counter() - started, done.stdout, done.stderr


def screenshot(chromium: str, page: Path, png: Path) -> float:
    """Wall seconds of one headless load, layout and paint of `page` into a 1280 x 3000 screenshot."""
    started = time.perf_counter()
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,3000",
            f"--screenshot={png}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", default="default")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3, help="loads of each page (the median is reported)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    chromium = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if chromium is None:
        print("report_bench: no Chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="gpuplan-report-"))
    work.mkdir(parents=True, exist_ok=True)
    problem, info = openbdata.to_problem(
        openbdata.read_nodes(), openbdata.read_pods(args.pods), time_limit=args.time_limit, workers=1, seed=0
    )
    t0 = time.perf_counter()
    plan = gpuplan.solve(problem, time_limit_s=args.time_limit, workers=1, seed=0)
    solve_s = time.perf_counter() - t0
    plan_path = work / "openb-plan.json"
    plan_path.write_text(plan.model_dump_json())
    problem_path = work / "openb-problem.json"
    problem_path.write_text(problem.model_dump_json(exclude_defaults=True))
    page = work / "openb-report.html"
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gpuplan.cli",
            "report",
            str(plan_path),
            "--problem",
            str(problem_path),
            "-o",
            str(page),
        ],
        cwd=openbdata.REPO_ROOT,
        check=True,
    )
    render_s = time.perf_counter() - t0
    blank = work / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    loads, blanks, own = [], [], []
    console: list[str] = []
    for _ in range(args.repeat):
        wall, dom, err = open_page(chromium, page)
        loads.append(wall)
        m = re.search(r'data-load-ms="(\d+)"', dom)
        own.append(int(m.group(1)) if m else None)
        console += [line for line in err.splitlines() if "CONSOLE" in line]
        blanks.append(open_page(chromium, blank)[0])
    shots, blank_shots = [], []
    for _ in range(args.repeat):
        shots.append(screenshot(chromium, page, work / "report.png"))
        blank_shots.append(screenshot(chromium, blank, work / "blank.png"))
    med = sorted(loads)[len(loads) // 2]
    base = sorted(blanks)[len(blanks) // 2]
    report = {
        "benchmark": "report of the openb plan",
        "command": "benchmarks/report_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": f"{os.cpu_count()} cores, {cpu_model()}",
        "pods": info["gpu_pods"],
        "gpus": info["gpus"],
        "plan": {
            "status": plan.status.value,
            "assignments": len(plan.assignments),
            "unassigned": len(plan.unassigned),
            "solve_s": round(solve_s, 2),
        },
        "plan_json_mb": round(plan_path.stat().st_size / 1e6, 2),
        "report_mb": round(page.stat().st_size / 1e6, 3),
        "render_s_with_process_start": round(render_s, 2),
        "chromium_load_s": {
            "report": [round(x, 3) for x in loads],
            "empty_page": [round(x, 3) for x in blanks],
            "median_report": round(med, 3),
            "median_empty": round(base, 3),
            "report_minus_empty": round(med - base, 3),
            "ratio": round(med / base, 2),
        },
        "chromium_screenshot_s": {
            "report": [round(x, 3) for x in shots],
            "empty_page": [round(x, 3) for x in blank_shots],
            "median_report": round(sorted(shots)[len(shots) // 2], 3),
            "median_empty": round(sorted(blank_shots)[len(blank_shots) // 2], 3),
        },
        "page_load_event_ms": own,
        "console_messages": console,
        "chromium": subprocess.run(
            [chromium, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calibration at scale: `gpuplan calibrate` on a journal of 100,000 recorded attempts.

A state directory is written with the executor's own journal schema: `--tasks` tasks in `--groups`
groups on `--types` GPU types, `--attempts` attempts in all (about 3% failed and 2% stopped, the rest
succeeded, durations log-normal around each type's true speed with 10% noise and 0.5% wild outliers).
Timed, one after the other in this command:

- `gpuplan calibrate STATE -o cal.json` as a fresh process (interpreter start, imports, reading the
  journal and the run's problem, the fit, writing the JSON);
- the fit alone, in this process, on the records already read (`gpuplan.calibration.fit`);
- the plain baseline: pandas reads the same attempts table and takes per (group, type) and per type
  the median of the log durations with `groupby(...).median()` (no exclusion bookkeeping, no spread).

    .venv/bin/python benchmarks/calibration_scale.py [--attempts 100000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run_gap import cpu_model, git_commit
from gpuplan.calibration import fit
from gpuplan.executor.journal import Journal
from gpuplan.history import load_history

REPO = Path(__file__).resolve().parent.parent


def write_state(
    state: Path, attempts: int, tasks: int, groups: int, types: int, seed: int
) -> dict[str, float]:
    """A finished run's journal with `attempts` attempts; returns the true speed factor per type."""
    rng = random.Random(seed)
    names = [f"T{k}" for k in range(types)]
    truth = {n: rng.uniform(0.6, 1.3) for n in names}
    problem = {
        "gpu_types": [
            {"name": n, "memory_gb": 80, "speed": 1.0 + k / 4, "cost_per_hour": 1.0}
            for k, n in enumerate(names)
        ],
        "nodes": [{"id": "n0", "gpus": [{"id": f"g-{n}", "type": n} for n in names]}],
        "tasks": [
            {"id": f"t{k}", "group": f"grp{k % groups}", "work_h": 1.0 + (k % groups) / 10}
            for k in range(tasks)
        ],
    }
    speed = {g["name"]: g["speed"] for g in problem["gpu_types"]}
    j = Journal(state / "journal.sqlite")
    with j.tx():
        j.set("epoch", 0.0)
        j.set("settings", {"hour_s": 3600.0})
        j.set("problem", problem)
        j.set("plan", {"assignments": []})
        j.set("spec", {"tasks": {}})
        j.set("state", "finished")
        rows = []
        for a in range(attempts):
            k = a % tasks
            t = problem["tasks"][k]
            n = rng.choice(names)
            hours = t["work_h"] / (speed[n] * truth[n]) * math.exp(rng.gauss(0, 0.1))
            if rng.random() < 0.005:
                hours *= rng.choice((0.01, 50.0))
            u = rng.random()
            st = "failed" if u < 0.03 else "stopped" if u < 0.05 else "succeeded"
            start = rng.uniform(0, 1e6)
            rows.append(
                (t["id"], a // tasks + 1, json.dumps([f"g-{n}"]), st, start, start, start + 3600 * hours)
            )
        j.db.executemany(
            "INSERT INTO attempts(task, n, gpus, state, dir, log, t_start, t_running, t_end)"
            " VALUES(?, ?, ?, ?, '', '', ?, ?, ?)",
            rows,
        )
    j.close()
    return truth


def baseline(state: Path) -> float:
    """Plain pandas: per (group, type) and per type medians of log hours; seconds taken."""
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    db = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
    df = pd.read_sql_query("SELECT task, gpus, state, t_running, t_end FROM attempts", db)
    problem = json.loads(db.execute("SELECT value FROM meta WHERE key='problem'").fetchone()[0])
    db.close()
    group = {t["id"]: t["group"] for t in problem["tasks"]}
    df = df[df.state == "succeeded"]
    df = df.assign(
        group=df.task.map(group), gpu=df.gpus.str.slice(2, -2), ln=np.log((df.t_end - df.t_running) / 3600)
    )
    df.groupby(["group", "gpu"]).ln.median()
    df.groupby("gpu").ln.median()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=40_000)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--types", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gpuplan-calscale-"))
    state = work / "state"
    truth = write_state(state, args.attempts, args.tasks, args.groups, args.types, args.seed)
    cal_path = work / "cal.json"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gpuplan.cli", "calibrate", str(state), "-o", str(cal_path), "-q"],
        cwd=REPO,
        check=True,
    )
    cli_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = load_history([state], metrics=False)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit(records)
    fit_s = time.perf_counter() - t0
    base_s = baseline(state)
    cal = json.loads(cal_path.read_text())
    err = max(abs(s["factor"] / truth[s["gpu_type"]] - 1) for s in cal["speeds"])
    report = {
        "benchmark": "calibration at scale",
        "command": "benchmarks/calibration_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": f"{os.cpu_count()} cores, {cpu_model()}",
        "attempts": args.attempts,
        "tasks": args.tasks,
        "groups": args.groups,
        "types": args.types,
        "journal_mb": round((state / "journal.sqlite").stat().st_size / 1e6, 1),
        "gpuplan_calibrate_process_s": round(cli_s, 2),
        "read_history_s": round(read_s, 2),
        "fit_s": round(fit_s, 3),
        "pandas_baseline_s": round(base_s, 2),
        "calibrate_over_baseline": round(cli_s / base_s, 2),
        "used": cal["used"],
        "excluded": cal["excluded"],
        "durations_fitted": len(cal["durations"]),
        "worst_speed_factor_error": round(err, 4),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

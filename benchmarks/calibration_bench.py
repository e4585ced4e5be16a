"""Close the loop on a simulated fleet whose GPUs are not as fast as declared.

Three GPU types are declared with speeds that the fleet does not keep (`TRUTH`: A100 30% slower, L4
20% faster, V100 as declared) and every task's duration has ±5% noise of its own (`sim_task.py`).
Planned hours are compressed to `--hour-s` seconds by the executor and by the task program.

1. batch 1 is planned from the declared values (`gpuplan solve`) and run (`gpuplan run` on the
   simulated fleet);
2. `gpuplan calibrate` fits speeds and durations from that run;
3. batch 2 (new tasks of the same groups, with noise of their own) is planned twice, from the
   declared values and with `--calibration`, and both plans are run.

For each run: the plan's predicted makespan (its latest end) and cost (Σ assignment costs) against
what the run measured (`gpuplan history`: the latest end of a successful attempt, Σ attempt hours x
share x price). The baseline is the uncalibrated plan of the same batch 2.

    .venv/bin/python benchmarks/calibration_bench.py [--hour-s 4] [--per-group 12] [--seed 0] [--out FILE]
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

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run_gap import cpu_model, git_commit

SIM_TASK = Path(__file__).with_name("sim_task.py")
REPO = Path(__file__).resolve().parent.parent

#: Declared (speed, $/h, W) per type, and the speed the simulated fleet really has.
TYPES = {"A100": (2.0, 3.0, 400.0), "L4": (0.5, 0.7, 72.0), "V100": (1.0, 1.5, 300.0)}
TRUTH = {"A100": 1.4, "L4": 0.6, "V100": 1.0}
#: Task groups and their declared work (GPU-hours on the reference GPU).
GROUPS = {"finetune": 4.0, "embed": 2.0, "eval": 1.0}
GPUS_PER_TYPE = 2
NOISE = 0.05


def gpu_ids() -> list[tuple[str, str]]:
    """(GPU id, type) of the simulated node."""
    return [(f"{t.lower()}-{k}", t) for t in TYPES for k in range(GPUS_PER_TYPE)]


def make_problem(batch: int, per_group: int) -> dict[str, Any]:
    """A scheduled problem (objective: makespan) of `per_group` tasks per group, ids unique per batch."""
    return {
        "gpu_types": [
            {"name": n, "memory_gb": 40, "speed": s, "cost_per_hour": c, "power_w": w}
            for n, (s, c, w) in TYPES.items()
        ],
        "nodes": [{"id": "sim0", "gpus": [{"id": g, "type": t} for g, t in gpu_ids()]}],
        "tasks": [
            {"id": f"b{batch}-{g}-{k}", "group": g, "work_h": w}
            for g, w in GROUPS.items()
            for k in range(per_group)
        ],
        "objective": {"kind": "makespan"},
    }


def sim_fleet(power: bool = True) -> dict[str, Any]:
    """The simulated node: one GPU per id, busy-looking readings at the type's declared power."""
    return {
        "node": "sim0",
        "gpus": [
            {
                "id": g,
                "uuid": f"GPU-cal-{k:04d}",
                "model": t,
                "memory_gb": 40,
                "utilization": 90.0,
                "power_w": TYPES[t][2] if power else 0.0,
            }
            for k, (g, t) in enumerate(gpu_ids())
        ],
    }


def commands(problem: dict[str, Any], work: Path, hour_s: float, seed: int) -> dict[str, Any]:
    """Each task runs sim_task.py with its declared work."""
    return {
        "max_retries": 0,
        "tasks": {
            t["id"]: {
                "argv": [
                    sys.executable,
                    "-I",
                    str(SIM_TASK),
                    "--work-h",
                    str(t["work_h"]),
                    "--sim",
                    str(work / "sim.json"),
                    "--truth",
                    str(work / "truth.json"),
                    "--hour-s",
                    str(hour_s),
                    "--seed",
                    str(seed),
                ]
            }
            for t in problem["tasks"]
        },
    }


def gpuplan(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the gpuplan command of this checkout; a non-zero exit stops the benchmark."""
    cmd = [sys.executable, "-m", "gpuplan.cli", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def predicted(plan_path: Path) -> dict[str, float]:
    """The plan's makespan (latest end, h) and cost (Σ assignment costs)."""
    plan = json.loads(plan_path.read_text())
    return {
        "makespan_h": max(a["end_h"] for a in plan["assignments"]),
        "cost": sum(a["cost"] for a in plan["assignments"]),
    }


def measured(state: Path) -> dict[str, float]:
    """The run's makespan (latest end of a successful attempt, h) and cost (Σ attempt costs)."""
    rows = json.loads(gpuplan("history", str(state)).stdout)
    ok = [r for r in rows if r["state"] == "succeeded"]
    return {
        "makespan_h": max(r["end_h"] for r in ok),
        "cost": sum(r["cost"] or 0.0 for r in rows),
        "attempts": len(rows),
        "succeeded": len(ok),
        "energy_kwh": sum(r["energy_j"] or 0.0 for r in rows) / 3.6e6,
    }


def plan_and_run(
    name: str, problem: Path, work: Path, args: argparse.Namespace, calibration: Path | None = None
) -> dict[str, Any]:
    """Solve, run on the simulated fleet, and compare what the plan predicted with what ran."""
    plan = work / f"{name}.plan.json"
    extra = ["--calibration", str(calibration)] if calibration else []
    solve = ["solve", str(problem), "-o", str(plan), "--time-limit", str(args.time_limit), "--workers", "1"]
    gpuplan(*solve, *extra)
    state = work / f"{name}.state"
    started = time.monotonic()
    gpuplan(
        "run",
        str(plan),
        "--problem",
        str(problem),
        "--commands",
        str(work / f"{problem.stem}.commands.json"),
        "--devices",
        str(work / "sim.json"),
        "--state-dir",
        str(state),
        "--hour-seconds",
        str(args.hour_s),
        "--sample-interval",
        str(args.sample_interval),
        "-q",
    )
    pred, meas = predicted(plan), measured(state)
    return {
        "plan": name,
        "run_wall_s": round(time.monotonic() - started, 1),
        "predicted": {k: round(v, 4) for k, v in pred.items()},
        "measured": {k: round(v, 4) for k, v in meas.items()},
        "error": {k: round(pred[k] / meas[k] - 1, 4) for k in pred},
        "state": str(state),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hour-s", type=float, default=4.0, help="seconds per planned hour")
    ap.add_argument("--per-group", type=int, default=12, help="tasks per group in each batch")
    ap.add_argument("--time-limit", type=float, default=10.0, help="solver seconds per plan")
    ap.add_argument("--sample-interval", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0, help="noise seed of the task program")
    ap.add_argument("--work", type=Path, default=None, help="keep the files here (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="append the report to this file as a JSON line")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpuplan-calbench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "sim.json").write_text(json.dumps(sim_fleet()))
    (work / "truth.json").write_text(json.dumps({"speeds": TRUTH, "noise": NOISE}))
    problems = {}
    for batch in (1, 2):
        p = make_problem(batch, args.per_group)
        path = work / f"batch{batch}.json"
        path.write_text(json.dumps(p))
        (work / f"batch{batch}.commands.json").write_text(
            json.dumps(commands(p, work, args.hour_s, args.seed))
        )
        problems[batch] = path
    t0 = time.monotonic()
    first = plan_and_run("batch1-declared", problems[1], work, args)
    cal_path = work / "calibration.json"
    t_cal = time.perf_counter()
    gpuplan("calibrate", first["state"], "-o", str(cal_path), "-q")
    cal_s = time.perf_counter() - t_cal
    base = plan_and_run("batch2-declared", problems[2], work, args)
    tuned = plan_and_run("batch2-calibrated", problems[2], work, args, calibration=cal_path)
    cal = json.loads(cal_path.read_text())
    plan2 = json.loads((work / "batch2-calibrated.plan.json").read_text())
    report = {
        "benchmark": "calibration loop",
        "command": "benchmarks/calibration_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": f"{os.cpu_count()} cores, {cpu_model()}",
        "declared": {t: {"speed": s, "cost_per_hour": c} for t, (s, c, _) in TYPES.items()},
        "true_speed": TRUTH,
        "noise_sigma_ln": NOISE,
        "hour_s": args.hour_s,
        "tasks_per_batch": args.per_group * len(GROUPS),
        "calibration": {
            "wall_s_with_process_start": round(cal_s, 2),
            "speeds": {s["gpu_type"]: round(s["factor"] * TYPES[s["gpu_type"]][0], 3) for s in cal["speeds"]},
            "speed_observations": {s["gpu_type"]: s["observations"] for s in cal["speeds"]},
            "durations": len(cal["durations"]),
            "excluded": cal["excluded"],
            "plan_values_from_calibration": sum(
                v["source"] == "calibration" for v in plan2["calibration"]["values"]
            ),
            "plan_values_declared": sum(v["source"] == "declared" for v in plan2["calibration"]["values"]),
        },
        "runs": [first, base, tuned],
        "calibrated_vs_declared_measured": {
            k: round(tuned["measured"][k] / base["measured"][k], 4) for k in ("makespan_h", "cost")
        },
        "wall_s": round(time.monotonic() - t0, 1),
        "work_dir": str(work),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

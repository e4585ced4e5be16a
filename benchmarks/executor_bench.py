"""Executor benchmark: launch overhead per task, and fault-to-running time for moved tasks.

A simulated machine of 64 GPUs runs 256 tasks (real child processes: a Python sleep that writes a
file). One GPU fails and, later, another overheats; the moved tasks restart elsewhere. Figures come
from the journal and the wrappers' files:

- launch overhead: from the executor recording an attempt `starting` to the wrapper having spawned the
  task (`started` file), per attempt; and the executor's launch throughput (tasks per second);
- fault to running: from the scripted fault time to each moved task's new attempt being spawned,
  split into detection (sampling), stop (SIGTERM and exit), re-plan (optimizer) and restart.

The launcher is measured twice in one command: `plain` (a new interpreter per wrapper and one journal
transaction pair per launch, as the executor launched before the spawner) and `spawner` (the
executor as it is: wrappers forked by a spawner, launches journaled and sent in batches).

Each task is `python -I -c TASK` (`--task python`), the same without site processing
(`python-nosite`: `python -I -S`, enough for a task that needs only the standard library) or a
shell script (`sh`).

    .venv/bin/python benchmarks/executor_bench.py [--gpus 64] [--tasks 256] [--replan-solver auto]
        [--task python|python-nosite|sh] [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gpuplan
from gpuplan.executor import Executor, RunSpec, Settings, launcher, scheduling
from gpuplan.executor.sim import SimulatedBackend
from gpuplan.executor.spec import SimFleet

#: The Python task: it records its own start-up (CPU and involuntary context switches from the
#: interpreter's start to here: `start_in_run`), sleeps, and writes the GPUs it was given.
TASK = (
    "import os, sys, time, resource; r = resource.getrusage(resource.RUSAGE_SELF); "
    "open(sys.argv[2] + '.start', 'w').write('%.3f %d' % (1000 * (r.ru_utime + r.ru_stime), r.ru_nivcsw)); "
    "time.sleep(float(sys.argv[1])); "
    "open(sys.argv[2], 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"
)
#: The same task as a POSIX shell script (about 1 ms of CPU to start against some 30 ms for Python):
#: isolates the executor's own launch cost from the tasks' start-up on a small machine.
SH_TASK = 'sleep "$1"; printf %s "$CUDA_VISIBLE_DEVICES" > "$2"'
#: What a benchmark task can be: the Python task as `python -I` (`python`: site processing of the
#: environment's .pth files, some 20 ms of CPU to start in a development venv) or as `python -I -S`
#: (`python-nosite`: no site processing, some 8 ms; the task needs only the standard library), or
#: the shell script (`sh`, some 2 ms).
TASK_KINDS = ("python", "python-nosite", "sh")


def task_argv(kind: str, sleep: float, out: Path) -> list[str]:
    """The benchmark task's argv for a kind of `TASK_KINDS`."""
    if kind == "sh":
        return ["/bin/sh", "-c", SH_TASK, "task", str(sleep), str(out)]
    if kind == "python-nosite":
        return [sys.executable, "-I", "-S", "-c", TASK, str(sleep), str(out)]
    return [sys.executable, "-I", "-c", TASK, str(sleep), str(out)]


def task_start(kind: str, n: int = 20) -> dict[str, float]:
    """The benchmark task's own start-up: CPU (user + system, ms) of one run with no sleep, the mean
    of `n` runs one after another, and the launches per second it alone allows on this machine's
    cores (a first wave starts every task at once, and at equal priority the launcher shares the
    cores with their start-ups: a ceiling for the launch throughput, whatever the launcher)."""
    with tempfile.TemporaryDirectory(prefix="gpuplan-start") as tmp:
        argv = task_argv(kind, 0.0, Path(tmp) / "out")
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "GPU-start"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(n):
            subprocess.run(argv, check=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / n
    cores = os.cpu_count() or 1
    return {
        "cpu_ms": round(1000 * cpu_s, 2),
        "cores": cores,
        "ceiling_per_s": round(cores / max(cpu_s, 1e-6)),
    }


#: Megabytes of memory a run holds, touched, until just before its first wave (`FreshPages`).
FRESH_PAGES_MB = 2048


class FreshPages:
    """Memory a run touches before it starts its executor and frees just before the first wave, so
    that the wave's new processes get pages the machine backs at that moment.

    Why: on a virtual machine that hands free memory back to its host (Linux free page reporting,
    as on this benchmark's machine), a page the guest reported must be faulted in again by the host
    when a process next touches it, at several times the cost of a page the guest kept. A guest
    keeps some free memory unreported; whatever starts just before a wave (a Ray cluster of nine
    nodes: some 3 GB) uses it up, and then every page a starting task touches is a host fault:
    a Python start-up here costs about twice the CPU (benchmarks/README.md, *Fresh pages*).
    Freeing the same amount of touched memory just before each run's wave gives every run the
    same memory to start its tasks with. `take` returns what touching cost, in microseconds per
    4 KiB page: about 2 when the pages were kept, 10 or more when the host had taken them back."""

    def __init__(self, mb: int) -> None:
        self.mb = mb
        self._maps: list[mmap.mmap] = []

    def take(self) -> float | None:
        """Touch `mb` megabytes (one write per page) and hold them; CPU microseconds per page."""
        if self.mb <= 0:
            return None
        page, chunk = mmap.PAGESIZE, 64 << 20
        t = time.process_time()
        for _ in range(max(1, (self.mb << 20) // chunk)):
            m = mmap.mmap(-1, chunk)
            for off in range(0, chunk, page):
                m[off] = 1
            self._maps.append(m)
        pages = len(self._maps) * chunk // page
        return round(1e6 * (time.process_time() - t) / pages, 2)

    def release(self) -> None:
        """Give the memory back (to this machine's free memory, where the wave finds it)."""
        for m in self._maps:
            m.close()
        self._maps.clear()


def start_in_run(out: Path) -> dict[str, Any] | None:
    """The Python tasks' own start-up during the run, as each recorded it (`TASK`; a moved task's
    last attempt): CPU (user + system, ms) and involuntary context switches (preemptions), beside
    `task_start`'s start-ups one at a time on an idle machine. None for `sh` tasks."""
    vals = [f.read_text().split() for f in out.glob("*.start")]
    if not vals:
        return None
    cpu = [float(v[0]) for v in vals]
    return {
        "tasks": len(vals),
        "cpu_ms_mean": round(statistics.mean(cpu), 2),
        "cpu_ms_p50": round(statistics.median(cpu), 2),
        "preemptions_mean": round(statistics.mean(int(v[1]) for v in vals), 1),
    }


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=64)
    ap.add_argument("--tasks", type=int, default=256)
    ap.add_argument("--sleep", type=float, default=14.0, help="seconds each task runs")
    ap.add_argument("--fail-at", type=float, default=9.0, help="seconds after the start: a GPU fails")
    ap.add_argument("--heat-at", type=float, default=11.0, help="seconds after the start: a GPU overheats")
    ap.add_argument("--sample-interval", type=float, default=0.1)
    ap.add_argument("--replan-solver", default="auto")
    ap.add_argument("--replan-time-limit", type=float, default=5.0)
    ap.add_argument("--task", choices=TASK_KINDS, default="python", help="what each task is")
    ap.add_argument("--keep", action="store_true", help="keep the state directory")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain launcher's run")
    ap.add_argument("--out", type=Path, help="also write the report (JSON) to this file")
    ap.add_argument(
        "--fresh-pages-mb",
        type=int,
        default=FRESH_PAGES_MB,
        help="memory each run frees just before its first wave (FreshPages; 0: none)",
    )
    args = ap.parse_args(argv)
    report: dict[str, object] = {
        "command": "benchmarks/executor_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "task_start": task_start(args.task),
        "runs": {},
    }
    runs: dict[str, dict[str, Any]] = {}
    ok = True
    for name in ("spawner",) if args.no_baseline else ("plain", "spawner"):
        with plain_launcher(name == "plain"):
            runs[name], done = one_run(args)
        ok = ok and done
    report["runs"] = runs
    if "plain" in runs:
        new, old = runs["spawner"], runs["plain"]
        report["spawner_over_plain"] = {
            "launch_overhead_mean": round(
                new["launch_overhead_ms"]["mean"] / old["launch_overhead_ms"]["mean"], 2
            ),
            "launch_overhead_p95": round(
                new["launch_overhead_ms"]["p95"] / old["launch_overhead_ms"]["p95"], 2
            ),
            "launch_throughput": round(new["launch_throughput_per_s"] / old["launch_throughput_per_s"], 2),
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if ok else 1


class _PerAttemptSpawner(launcher.Spawner):
    """The plain launcher: a new interpreter per wrapper (`python -I _wrapper.py DIR LOG -- argv`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, requests: list[launcher.LaunchRequest]) -> list[int | str]:
        out: list[int | str] = []
        for r in requests:
            for d in r.mkdirs:
                os.makedirs(d, exist_ok=True)
            proc = launcher.spawn(Path(r.dir), Path(r.log), r.argv, {**os.environ, **r.env}, r.cwd)
            self.children.append(proc)
            out.append(proc.pid)
        return out

    def close(self) -> None:
        for proc in self.children:
            proc.poll()


@contextlib.contextmanager
def plain_launcher(on: bool) -> Iterator[None]:
    """With `on`, launch as before the spawner: one attempt per journal transaction pair and a new
    interpreter per wrapper (the baseline run in the same command)."""
    if not on:
        yield
        return
    saved = launcher.Spawner, scheduling.ROUND_MAX
    launcher.Spawner, scheduling.ROUND_MAX = _PerAttemptSpawner, 1  # type: ignore[misc]
    try:
        yield
    finally:
        launcher.Spawner, scheduling.ROUND_MAX = saved  # type: ignore[misc]


def one_run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """One run of the benchmark: its report and whether every task completed."""
    work = Path(tempfile.mkdtemp(prefix="gpuplan-exbench-"))
    fresh = FreshPages(args.fresh_pages_mb)
    take_us = fresh.take()
    gpus = [f"g{k}" for k in range(args.gpus)]
    problem = gpuplan.Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
            "nodes": [{"id": "sim0", "gpus": [{"id": g, "type": "A100"} for g in gpus]}],
            "temperature_limit_c": 85,
            "tasks": [
                {"id": f"t{k}", "gpu_share": 0.2, "gpu_memory_gb": 8, "work_h": 1} for k in range(args.tasks)
            ],
        }
    )
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=10, workers=1)
    used = sorted({g for a in plan.assignments for g in a.gpus}, key=lambda g: int(g[1:]))
    failing, hot = used[len(used) // 3], used[2 * len(used) // 3]
    fleet = SimFleet.model_validate(
        {
            "node": "sim0",
            "gpus": [
                {"id": g, "uuid": f"GPU-bench-{k:04d}", "model": "A100", "memory_gb": 80}
                for k, g in enumerate(gpus)
            ],
            "script": [
                {"at_s": args.fail_at, "gpu": failing, "fail": True},
                {"at_s": args.heat_at, "gpu": hot, "temperature_c": 95},
            ],
        }
    )
    out = work / "out"
    out.mkdir()
    spec = RunSpec.model_validate(
        {
            "tasks": {
                a.task: {"argv": task_argv(args.task, args.sleep, out / a.task)} for a in plan.assignments
            }
        }
    )
    settings = Settings(
        sample_interval_s=args.sample_interval,
        grace_s=5,
        replan_time_limit_s=args.replan_time_limit,
        replan_solver=args.replan_solver,
        workers=1,
    )
    ex = Executor(
        work / "state",
        problem=problem,
        plan=plan,
        spec=spec,
        settings=settings,
        backend_factory=lambda epoch: SimulatedBackend(fleet, epoch=epoch),
        cwd=str(work),
    )
    epoch = ex.epoch
    fresh.release()
    t0 = time.monotonic()
    result = ex.run(max_s=300)
    wall = time.monotonic() - t0
    ex.close()

    db = sqlite3.connect(work / "state" / "journal.sqlite")
    db.row_factory = sqlite3.Row
    attempts = db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
    launch, to_claim, claim_to_spawn = [], [], []
    for a in attempts:
        started = Path(a["dir"], "started")
        if started.exists():
            t_spawned = json.loads(started.read_text())["t"]
            t_claimed = json.loads(Path(a["dir"], "claim").read_text())["t"]
            launch.append(t_spawned - a["t_start"])
            to_claim.append(t_claimed - a["t_start"])
            claim_to_spawn.append(t_spawned - t_claimed)
    first = [a for a in attempts if a["n"] == 1]
    span = max(a["t_running"] for a in first) - min(a["t_start"] for a in first)
    events = db.execute("SELECT * FROM events ORDER BY id").fetchall()
    report: dict[str, Any] = {
        "gpus": args.gpus,
        "tasks": args.tasks,
        "counts": result.counts,
        "wall_s": round(wall, 2),
        "launch_overhead_ms": {
            "mean": round(1000 * statistics.mean(launch), 1),
            "p50": round(1000 * pct(launch, 0.5), 1),
            "p95": round(1000 * pct(launch, 0.95), 1),
            "max": round(1000 * max(launch), 1),
            "attempts": len(launch),
            # the mean split in two at the wrapper's claim: journal commit, request and fork; then
            # the wrapper starting the task
            "recorded_to_claimed_mean": round(1000 * statistics.mean(to_claim), 1),
            "claimed_to_spawned_mean": round(1000 * statistics.mean(claim_to_spawn), 1),
        },
        "first_wave_launch_s": round(span, 3),
        "launch_throughput_per_s": round(len(first) / span, 1),
        "settings": {
            "sample_interval_s": args.sample_interval,
            "replan_solver": args.replan_solver,
            "task": args.task,
        },
        "faults": [],
    }
    for gpu, at in ((failing, args.fail_at), (hot, args.heat_at)):
        fault = next(e for e in events if e["kind"] == "fault" and e["gpu"] == gpu)
        replan = next(e for e in events if e["kind"] == "replan" and e["id"] > fault["id"])
        stops = [
            e for e in events if e["kind"] == "stop" and e["id"] > fault["id"] and e["id"] < replan["id"]
        ]
        moved = sorted({e["task"] for e in stops})
        restarts = []
        for task in moved:
            nxt = db.execute("SELECT dir FROM attempts WHERE task=? AND n=2", (task,)).fetchone()
            started = Path(nxt["dir"], "started") if nxt else None
            if started and started.exists():
                restarts.append(json.loads(started.read_text())["t"])
        stop_done = db.execute(
            f"SELECT MAX(t_end) FROM attempts WHERE task IN ({','.join('?' * len(moved))}) AND n=1", moved
        ).fetchone()[0]
        scripted = epoch + at
        report["faults"].append(  # type: ignore[union-attr]
            {
                "gpu": gpu,
                "kind": "fail" if gpu == failing else "overheat",
                "moved_tasks": len(moved),
                "restarted": len(restarts),
                "detect_s": round(fault["t"] - scripted, 3),
                "stop_s": round(stop_done - fault["t"], 3),
                "replan_solve_s": json.loads(replan["data"])["solve_s"],
                "fault_to_all_running_s": round(max(restarts) - scripted, 3) if restarts else None,
                "detection_to_all_running_s": round(max(restarts) - fault["t"], 3) if restarts else None,
            }
        )
    report["task_start_in_run"] = start_in_run(out)
    report["fresh_pages"] = {"mb": args.fresh_pages_mb, "take_us_per_page": take_us}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"state kept in {work}", file=sys.stderr)
    return report, result.exit_code == 0


if __name__ == "__main__":
    sys.exit(main())

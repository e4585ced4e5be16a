"""Executor across nodes: a local Ray cluster of simulated nodes against the one-machine executor.

Starts a Ray cluster on this machine (a head that runs no tasks, and `--nodes` worker nodes named
n0, n1, ... by the resource `gpuplan-node:<id>`, each with `--gpus-per-node` simulated GPUs), then
runs the same plan (`--tasks` tasks of gpu_share 0.2, real child processes) twice in this command:

1. on Ray (`RayFleet`: one agent per node): one GPU fails at `--fail-at` s and one node is removed
   from the cluster at `--remove-at` s;
2. with the one-machine executor on the same 64 GPUs (one simulated machine): the same GPU fails at
   the same time and the removed node's GPUs all fail at `--remove-at` (a node lost, as one machine
   can show it).

Each process Ray starts for a node (its raylet, with the workers the raylet forks: the node's agent
and the agent's spawner) leads a session of its own, as on a real cluster, where a node's control
plane shares the node's cores with that node's tasks only. Where Linux groups CPU time by session
(autogroup), Ray's cluster utilities would otherwise start every node in this process's session:
one scheduling entity for all nine nodes and the head, against one per task starting up
(`--one-session` keeps that; see benchmarks/README.md, *Node sessions*).

Per run: launch latency (attempt recorded -> task spawned, mean and p95), launch throughput of the
first wave, and for each fault the time from the fault to the last moved task spawned again; for
the Ray run also CPU and memory of the head (this process) and of the agents, idle and launching.

    .venv/bin/python benchmarks/executor_ray_bench.py [--nodes 8] [--gpus-per-node 8] [--tasks 256]
        [--task python|python-nosite|sh] [--one-session]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gpuplan
from gpuplan.executor import Executor, RunSpec, Settings
from gpuplan.executor.runner import plan_hash
from gpuplan.executor.sim import SimulatedBackend
from gpuplan.executor.spec import SimFleet

sys.path.insert(0, str(Path(__file__).parent))
from executor_bench import FRESH_PAGES_MB, TASK_KINDS, FreshPages, pct, start_in_run, task_argv, task_start

NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
FAST_HEALTH = {
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
    "health_check_timeout_ms": 300,
}


@contextlib.contextmanager
def node_sessions(on: bool) -> Iterator[None]:
    """While open (and `on`), every process Ray starts for a node leads a session of its own (module
    docstring). Ray has no setting for it: its process starter, `ray._private.services.ConsolePopen`,
    is wrapped; a Ray without it is an error that names `--one-session`, never a silent change."""
    if not on:
        yield
        return
    import ray._private.services as services

    base = getattr(services, "ConsolePopen", None)
    if base is None:
        raise SystemExit(
            "executor_ray_bench: this Ray has no ray._private.services.ConsolePopen to start nodes in "
            "sessions of their own; run with --one-session"
        )

    class OwnSession(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["start_new_session"] = True
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = base


def _usage_self() -> tuple[float, float]:
    """(CPU seconds, resident MB) of this process."""
    stat = Path("/proc/self/stat").read_bytes().rsplit(b")", 1)[1].split()
    rss = next(
        int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS")
    )
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024


class Sampler(threading.Thread):
    """Samples the head's and the agents' CPU and memory every `every` seconds."""

    def __init__(self, fleet: Any, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.fleet, self.every = fleet, every
        self.samples: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            cpu, rss = _usage_self()
            agents = self.fleet.usage() if self.fleet is not None else {}
            self.samples.append({"t": time.time(), "head": {"cpu_s": cpu, "rss_mb": rss}, "agents": agents})
            self.done.wait(self.every)


def _window(samples: list[dict[str, Any]], t0: float, t1: float) -> dict[str, Any] | None:
    """Mean CPU (% of one core) and peak memory of head and agents between t0 and t1."""
    inside = [s for s in samples if t0 <= s["t"] <= t1]
    if len(inside) < 2:
        return None
    a, b = inside[0], inside[-1]
    dt = b["t"] - a["t"]
    out: dict[str, Any] = {
        "seconds": round(dt, 2),
        "head_cpu_pct": round(100 * (b["head"]["cpu_s"] - a["head"]["cpu_s"]) / dt, 1),
        "head_rss_mb": round(max(s["head"]["rss_mb"] for s in inside), 1),
    }
    per_agent, per_spawner, rss, spawner_rss = [], [], [], []
    for node in set(a["agents"]) & set(b["agents"]):
        x, y = a["agents"][node], b["agents"][node]
        per_agent.append(100 * (y["agent"]["cpu_s"] - x["agent"]["cpu_s"]) / dt)
        rss.append(max(s["agents"][node]["agent"]["rss_mb"] for s in inside if node in s["agents"]))
        if x.get("spawner") and y.get("spawner"):
            per_spawner.append(100 * (y["spawner"]["cpu_s"] - x["spawner"]["cpu_s"]) / dt)
            spawner_rss.append(y["spawner"]["rss_mb"])
    if per_agent:
        out["agent_cpu_pct_mean"] = round(statistics.mean(per_agent), 1)
        out["agent_cpu_pct_max"] = round(max(per_agent), 1)
        out["agent_rss_mb_max"] = round(max(rss), 1)
    if per_spawner:
        out["spawner_cpu_pct_mean"] = round(statistics.mean(per_spawner), 1)
        out["spawner_rss_mb_max"] = round(max(spawner_rss), 1)
    return out


def measure(state: Path, epoch: float, faults: list[tuple[str, float, set[str]]]) -> dict[str, Any]:
    """Launch and fault figures from a run's journal and attempt files. `faults`: (name, wall time of
    the fault, GPUs it took)."""
    db = sqlite3.connect(state / "journal.sqlite")
    db.row_factory = sqlite3.Row
    attempts = db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
    started: dict[int, float] = {}
    for a in attempts:
        f = Path(a["dir"], "started")
        if f.exists():
            started[a["id"]] = json.loads(f.read_text())["t"]
    launch = [started[a["id"]] - a["t_start"] for a in attempts if a["id"] in started]
    first = [a for a in attempts if a["n"] == 1 and a["t_running"] is not None]
    first_wave = [a for a in first if a["t_start"] < min(t for _, t, _ in faults)]
    span = max(a["t_running"] for a in first_wave) - min(a["t_start"] for a in first_wave)
    out: dict[str, Any] = {
        "attempts": len(attempts),
        "launch_latency_ms": {
            "mean": round(1000 * statistics.mean(launch), 1),
            "p50": round(1000 * pct(launch, 0.5), 1),
            "p95": round(1000 * pct(launch, 0.95), 1),
            "max": round(1000 * max(launch), 1),
        },
        "first_wave": {"tasks": len(first_wave), "launch_s": round(span, 3)},
        "launch_throughput_per_s": round(len(first_wave) / span, 1),
        "first_wave_end": max(a["t_running"] for a in first_wave),
        "first_wave_start": min(a["t_start"] for a in first_wave),
        "faults": [],
    }
    for name, at, gpus in faults:
        hit = [
            a
            for a in attempts
            if set(json.loads(a["gpus"])) & gpus and a["t_start"] < at and a["state"] != "succeeded"
        ]
        moved = {a["task"] for a in hit}
        again = [
            started[a["id"]]
            for a in attempts
            if a["task"] in moved and a["t_start"] >= at and a["id"] in started
        ]
        out["faults"].append(
            {
                "fault": name,
                "moved_tasks": len(moved),
                "restarted": len({a["task"] for a in attempts if a["task"] in moved and a["t_start"] >= at}),
                "fault_to_all_running_s": round(max(again) - at, 3) if again else None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--tasks", type=int, default=256)
    # the run's clock starts before the agents do (some 6 s for 8 agents here), so the faults come
    # late enough for the first wave to be launched and idle a while on Ray too
    ap.add_argument("--sleep", type=float, default=24.0, help="seconds each task runs")
    ap.add_argument("--fail-at", type=float, default=18.0, help="seconds after the start: a GPU fails")
    ap.add_argument("--remove-at", type=float, default=20.0, help="seconds after the start: a node leaves")
    ap.add_argument("--sample-interval", type=float, default=0.1)
    ap.add_argument("--task", choices=TASK_KINDS, default="python", help="what each task is")
    ap.add_argument("--only", choices=("ray", "local"), help="run one executor only")
    ap.add_argument("--out", type=Path, help="also write the report (JSON) to this file")
    ap.add_argument(
        "--fresh-pages-mb",
        type=int,
        default=FRESH_PAGES_MB,
        help="memory each run frees just before its first wave (executor_bench.FreshPages; 0: none)",
    )
    ap.add_argument(
        "--one-session",
        action="store_true",
        help="start every node in this process's session, as Ray's cluster utilities do by themselves",
    )
    args = ap.parse_args(argv)

    from ray.cluster_utils import Cluster

    # Ray prints node deaths to stdout: keep them on stderr, and stdout for the report
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)

    from gpuplan.executor.raycluster import RayFleet

    work = Path(tempfile.mkdtemp(prefix="gpuplan-raybench-"))
    nodes = [f"n{k}" for k in range(args.nodes)]
    gpus = {n: [f"{n}-g{k}" for k in range(args.gpus_per_node)] for n in nodes}
    problem = gpuplan.Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
            "nodes": [{"id": n, "gpus": [{"id": g, "type": "A100"} for g in gpus[n]]} for n in nodes],
            "temperature_limit_c": 85,
            "tasks": [
                {"id": f"t{k}", "gpu_share": 0.2, "gpu_memory_gb": 8, "work_h": 1} for k in range(args.tasks)
            ],
        }
    )
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=10, workers=1)
    used = [g for a in plan.assignments for g in a.gpus]
    by_node = {n: sum(1 for a in plan.assignments if a.node == n) for n in nodes}
    leaving = max(nodes[1:], key=lambda n: by_node[n])  # a node with tasks
    failing = next(g for g in used if not g.startswith(leaving + "-") and not g.startswith(nodes[0] + "-"))
    uuid = {g: f"GPU-{g}" for n in nodes for g in gpus[n]}
    settings = Settings(
        sample_interval_s=args.sample_interval,
        grace_s=5,
        replan_time_limit_s=5,
        replan_solver="greedy",
        workers=1,
    )
    report: dict[str, Any] = {
        "command": "benchmarks/executor_ray_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "nodes": args.nodes,
        "gpus": args.nodes * args.gpus_per_node,
        "tasks": args.tasks,
        "task": args.task,
        "task_start": task_start(args.task),
        "node_sessions": "one, shared with the head" if args.one_session else "a session per node process",
        "failing_gpu": failing,
        "leaving_node": leaving,
        "runs": {},
    }

    def spec_for(out: Path) -> RunSpec:
        out.mkdir(parents=True)
        return RunSpec.model_validate(
            {
                "tasks": {
                    a.task: {"argv": task_argv(args.task, args.sleep, out / a.task)} for a in plan.assignments
                }
            }
        )

    # 1. Ray -----------------------------------------------------------------------------------------
    fresh = FreshPages(args.fresh_pages_mb)
    if args.only in (None, "ray"):
        take_us = fresh.take()  # before the cluster: its start-up uses up the memory the host backs
        t = time.monotonic()
        with node_sessions(not args.one_session):
            cluster = Cluster(
                initialize_head=True,
                head_node_args={**NODE_ARGS, "include_dashboard": False, "_system_config": FAST_HEALTH},
            )
            ray_nodes = {n: cluster.add_node(**NODE_ARGS, resources={f"gpuplan-node:{n}": 1}) for n in nodes}
        cluster_up = time.monotonic() - t
        try:
            sims = work / "sims"
            sims.mkdir()
            for n in nodes:
                script = [{"at_s": args.fail_at, "gpu": failing, "fail": True}] if failing in gpus[n] else []
                fleet = {
                    "node": n,
                    "gpus": [{"id": g, "uuid": uuid[g], "model": "A100", "memory_gb": 80} for g in gpus[n]],
                    "script": script,
                }
                (sims / f"{n}.json").write_text(json.dumps(fleet))
            spec = spec_for(work / "ray-out")
            holder: dict[str, Any] = {}

            def factory(epoch: float) -> Any:
                t0 = time.monotonic()
                fleet = RayFleet(
                    cluster.address,
                    nodes=nodes,
                    run=plan_hash(problem, plan, spec),
                    sims=sims,
                    state_dir=work / "ray-state",
                    epoch=epoch,
                )
                holder["fleet"], holder["agents_up_s"] = fleet, time.monotonic() - t0
                return fleet

            ex = Executor(
                work / "ray-state",
                problem=problem,
                plan=plan,
                spec=spec,
                settings=settings,
                backend_factory=factory,
                cwd=str(work),
            )
            epoch = ex.epoch
            sampler = Sampler(holder["fleet"])
            sampler.start()
            removed: dict[str, float] = {}

            def remove() -> None:
                delay = epoch + args.remove_at - time.time()
                time.sleep(max(0.0, delay))
                removed["t"] = time.time()
                cluster.remove_node(ray_nodes.pop(leaving), allow_graceful=False)

            remover = threading.Thread(target=remove, daemon=True)
            remover.start()
            fresh.release()
            t0 = time.monotonic()
            result = ex.run(max_s=300)
            wall = time.monotonic() - t0
            sampler.done.set()
            sampler.join()
            remover.join()
            ex.close()
            run = measure(
                work / "ray-state",
                epoch,
                [
                    ("gpu failed", epoch + args.fail_at, {failing}),
                    ("node removed", removed["t"], set(gpus[leaving])),
                ],
            )
            wave_end, wave_start = run.pop("first_wave_end"), run.pop("first_wave_start")
            run.update(
                counts=result.counts,
                wall_s=round(wall, 2),
                cluster_up_s=round(cluster_up, 1),
                agents_up_s=round(holder["agents_up_s"], 2),
                task_start_in_run=start_in_run(work / "ray-out"),
                fresh_pages={"mb": args.fresh_pages_mb, "take_us_per_page": take_us},
                usage={
                    "launching": _window(sampler.samples, wave_start, wave_end),
                    "idle": _window(sampler.samples, wave_end + 1.0, epoch + args.fail_at - 0.3),
                },
            )
            report["runs"]["ray"] = run
        finally:
            cluster.shutdown()

    # 2. one machine ---------------------------------------------------------------------------------
    if args.only in (None, "local"):
        take_us = fresh.take()
        script = [{"at_s": args.fail_at, "gpu": failing, "fail": True}]
        script += [{"at_s": args.remove_at, "gpu": g, "fail": True} for g in gpus[leaving]]
        fleet = SimFleet.model_validate(
            {
                "node": "one",
                "gpus": [
                    {"id": g, "uuid": uuid[g], "model": "A100", "memory_gb": 80}
                    for n in nodes
                    for g in gpus[n]
                ],
                "script": script,
            }
        )
        spec = spec_for(work / "local-out")
        ex = Executor(
            work / "local-state",
            problem=problem,
            plan=plan,
            spec=spec,
            settings=settings,
            backend_factory=lambda epoch: SimulatedBackend(fleet, epoch=epoch),
            cwd=str(work),
        )
        epoch = ex.epoch
        sampler = Sampler(None)
        sampler.start()
        fresh.release()
        t0 = time.monotonic()
        result = ex.run(max_s=300)
        wall = time.monotonic() - t0
        sampler.done.set()
        sampler.join()
        ex.close()
        run = measure(
            work / "local-state",
            epoch,
            [
                ("gpu failed", epoch + args.fail_at, {failing}),
                (f"{leaving}'s GPUs failed", epoch + args.remove_at, set(gpus[leaving])),
            ],
        )
        wave_end, wave_start = run.pop("first_wave_end"), run.pop("first_wave_start")
        run.update(
            counts=result.counts,
            wall_s=round(wall, 2),
            task_start_in_run=start_in_run(work / "local-out"),
            fresh_pages={"mb": args.fresh_pages_mb, "take_us_per_page": take_us},
            usage={
                "launching": _window(sampler.samples, wave_start, wave_end),
                "idle": _window(sampler.samples, wave_end + 1.0, epoch + args.fail_at - 0.3),
            },
        )
        report["runs"]["local"] = run
    if "ray" in report["runs"] and "local" in report["runs"]:
        r, loc = report["runs"]["ray"], report["runs"]["local"]
        report["ray_over_local"] = {
            "launch_latency_mean": round(
                r["launch_latency_ms"]["mean"] / loc["launch_latency_ms"]["mean"], 2
            ),
            "launch_latency_p95": round(r["launch_latency_ms"]["p95"] / loc["launch_latency_ms"]["p95"], 2),
            "launch_throughput": round(r["launch_throughput_per_s"] / loc["launch_throughput_per_s"], 2),
        }
    text = json.dumps(report, indent=2)
    sys.stdout.flush()
    os.dup2(real_stdout, 1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    ok = all(run["counts"] == {"done": args.tasks} for run in report["runs"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

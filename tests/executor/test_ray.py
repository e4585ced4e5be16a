"""The executor across nodes: a real local Ray cluster (a head and worker nodes on this machine, each
worker with simulated GPUs), `gpuplan run --ray` in a subprocess as the head.

Kept few: the cluster starts once per module; each test adds the nodes it removes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the Ray tests need the ray package: pip install 'gpuplan[ray]'")
from exec_helpers import TASKPROG, records  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import gpuplan  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
#: Node death is noticed in about a second instead of Ray's default half a minute.
FAST_HEALTH = {
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
    "health_check_timeout_ms": 300,
}


class Lab:
    """The cluster, its worker nodes by plan node id, and helpers to run the head on it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.nodes: dict[str, Any] = {}

    def add(self, name: str) -> None:
        self.nodes[name] = self.cluster.add_node(**NODE_ARGS, resources={f"gpuplan-node:{name}": 1})

    def remove(self, name: str) -> None:
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A head (no plan node: named by host name) and worker nodes n0, n1, n2, shut down at the end."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**NODE_ARGS, "include_dashboard": False, "_system_config": FAST_HEALTH},
    )
    lab = Lab(cluster)
    try:
        for name in ("n0", "n1", "n2"):
            lab.add(name)
        yield lab
    finally:
        cluster.shutdown()


def gpu_id(node: str, k: int) -> str:
    return f"{node}-g{k}"


def uuid(node: str, k: int) -> str:
    return f"GPU-{node}-{k:04d}"


def setup(
    tmp: Path,
    nodes: list[str],
    tasks: list[dict[str, Any]],
    *,
    gpus: int = 2,
    sleep: float = 2.0,
    script: dict[str, list[dict[str, Any]]] | None = None,
    horizon_h: float | None = None,
) -> tuple[gpuplan.Problem, gpuplan.Plan]:
    """Sim fleets (`sims/<node>.json`), problem, plan and commands in `tmp`; the plan from the greedy."""
    sims = tmp / "sims"
    sims.mkdir()
    for n in nodes:
        fleet = {
            "node": n,
            "gpus": [
                {"id": gpu_id(n, k), "uuid": uuid(n, k), "model": "A100", "memory_gb": 80}
                for k in range(gpus)
            ],
            "script": (script or {}).get(n, []),
        }
        (sims / f"{n}.json").write_text(json.dumps(fleet))
    data: dict[str, Any] = {
        "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
        "nodes": [
            {"id": n, "gpus": [{"id": gpu_id(n, k), "type": "A100"} for k in range(gpus)]} for n in nodes
        ],
        "temperature_limit_c": 85,
        "tasks": tasks,
    }
    if horizon_h is not None:
        data["horizon_h"] = horizon_h
    problem = gpuplan.Problem.model_validate(data)
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5, workers=1)
    assert plan.status.has_solution
    out = tmp / "out"
    out.mkdir()
    argv = [sys.executable, TASKPROG, str(out), "--sleep", str(sleep)]
    commands = {"tasks": {a.task: {"argv": argv} for a in plan.assignments}}
    (tmp / "problem.json").write_text(problem.model_dump_json())
    (tmp / "plan.json").write_text(plan.model_dump_json())
    (tmp / "commands.json").write_text(json.dumps(commands))
    return problem, plan


def head_argv(tmp: Path, address: str, *extra: str) -> list[str]:
    """`gpuplan run --ray` on the files `setup` wrote."""
    return [
        sys.executable,
        "-m",
        "gpuplan.cli",
        "run",
        str(tmp / "plan.json"),
        "--problem",
        str(tmp / "problem.json"),
        "--commands",
        str(tmp / "commands.json"),
        "--devices",
        str(tmp / "sims"),
        "--ray",
        address,
        "--state-dir",
        str(tmp / "state"),
        "--sample-interval",
        "0.1",
        "--grace",
        "1",
        "--replan-solver",
        "greedy",
        "-q",
        *extra,
    ]


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run_head(tmp: Path, address: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        head_argv(tmp, address), env=ENV, capture_output=True, text=True, timeout=timeout, cwd=tmp
    )


def journal(tmp: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp / "state" / "journal.sqlite")
    db.row_factory = sqlite3.Row
    return db


def attempts_by_task(tmp: Path) -> dict[str, list[sqlite3.Row]]:
    out: dict[str, list[sqlite3.Row]] = {}
    for r in journal(tmp).execute("SELECT * FROM attempts ORDER BY id"):
        out.setdefault(r["task"], []).append(r)
    return out


def check_each_start(tmp: Path, lab: Lab, plan: gpuplan.Plan) -> None:
    """Every recorded start ran on its attempt's node (where Ray placed that node's agent) and saw
    exactly its attempt's GPUs; every task completed exactly once; a task started before any re-plan
    started where the plan put it."""
    ray_ids = {name: node.node_id for name, node in lab.nodes.items()}
    gpu_uuid = {gpu_id(n, k): uuid(n, k) for n in ray_ids for k in range(4)}
    rows = attempts_by_task(tmp)
    out = tmp / "out"
    replans = [r[0] for r in journal(tmp).execute("SELECT t FROM events WHERE kind='replan'")]
    first_replan = min(replans, default=float("inf"))
    for a in plan.assignments:
        starts = records(out, a.task, "starts")
        assert starts, f"{a.task} never started"
        for rec in starts:
            att = rows[a.task][int(rec["attempt"]) - 1]
            gpus = json.loads(att["gpus"])
            assert rec["cvd"] == ",".join(gpu_uuid[g] for g in gpus), (a.task, rec)
            assert rec["node"] == att["node"] and rec["ray_node"] == ray_ids[att["node"]], (a.task, rec)
            # Ray runs its workers at niceness 15; a task must not inherit that from its agent
            assert rec["nice"] == os.getpriority(os.PRIO_PROCESS, 0), (a.task, rec)
        if rows[a.task][0]["t_start"] < first_replan:
            assert json.loads(rows[a.task][0]["gpus"]) == a.gpus, a.task
        assert len(records(out, a.task, "done")) == 1, (
            f"{a.task} completed {len(records(out, a.task, 'done'))}x"
        )


def test_tasks_run_on_their_nodes_and_gpus_and_move_off_a_failed_gpu(lab: Lab, tmp_path: Path) -> None:
    """Each task runs on its planned node and sees only its GPUs; a GPU failing on one node moves its
    tasks (exactly once each) and the run completes."""
    nodes = ["n0", "n1", "n2"]
    tasks = [{"id": f"t{k}", "gpu_share": 0.5, "work_h": 1} for k in range(8)]
    _, plan = setup(tmp_path, nodes, tasks, sleep=5.0)
    used = [g for a in plan.assignments for g in a.gpus]
    failing = used[len(used) // 2]
    node = failing.split("-")[0]
    # the failure comes when the first wave runs (the run's clock starts when the head records it)
    (tmp_path / "sims" / f"{node}.json").write_text(
        json.dumps(
            {
                **json.loads((tmp_path / "sims" / f"{node}.json").read_text()),
                "script": [{"at_s": 6.0, "gpu": failing, "fail": True}],
            }
        )
    )
    done = run_head(tmp_path, lab.cluster.address)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["counts"] == {"done": 8}
    on_failed = [a.task for a in plan.assignments if failing in a.gpus]
    check_each_start(tmp_path, lab, plan)
    fault_t = journal(tmp_path).execute("SELECT MIN(t) FROM events WHERE kind='fault'").fetchone()[0]
    before = [
        r for r in journal(tmp_path).execute("SELECT * FROM attempts WHERE n=1 AND t_start < ?", (fault_t,))
    ]
    assert len(before) >= 4, "most tasks should start where planned before the fault"
    rows = attempts_by_task(tmp_path)
    for task in on_failed:  # stopped and moved, or moved before it started
        assert len(rows[task]) <= 2 and failing not in json.loads(rows[task][-1]["gpus"]), task
    kinds = {r["kind"] for r in journal(tmp_path).execute("SELECT kind FROM events")}
    assert {"fault", "replan", "move"} <= kinds
    # readings come with the agents' watches, every 0.1 s per GPU, and the failure at once
    epoch = json.loads(journal(tmp_path).execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0])
    assert 6.0 <= fault_t - epoch < 7.5
    metrics = [json.loads(line) for line in (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()]
    seen = {m["gpu"] for m in metrics}
    assert {g for a in plan.assignments for g in a.gpus} <= seen
    ts = sorted(m["t"] for m in metrics if m["gpu"] == used[0])
    assert len(ts) >= 0.5 * (ts[-1] - ts[0]) / 0.1 and len(ts) == len(set(ts))


def test_a_node_removed_mid_run_has_its_tasks_finish_elsewhere_once(lab: Lab, tmp_path: Path) -> None:
    """A node leaving the cluster: its GPUs are marked failed, its tasks re-planned onto the other
    node and completed exactly once (the fenced wrappers on the lost node killed their copies)."""
    for name in ("n3", "n4"):
        lab.add(name)
    tasks = [{"id": f"t{k}", "gpu_share": 0.5, "work_h": 1} for k in range(4)]
    _, plan = setup(tmp_path, ["n3", "n4"], tasks, sleep=6.0)
    victim = plan.assignments[0].node
    assert victim is not None
    moved = [a.task for a in plan.assignments if a.node == victim]
    head = subprocess.Popen(
        head_argv(tmp_path, lab.cluster.address),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "out").glob("*.starts"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list((tmp_path / "out").glob("*.starts"))) == 4
        time.sleep(0.5)
        lab.remove(victim)
        stdout, stderr = head.communicate(timeout=90)
    finally:
        if head.poll() is None:
            head.kill()
        for name in [n for n in ("n3", "n4") if n in lab.nodes]:
            lab.remove(name)
    assert head.returncode == 0, stderr.decode()[-3000:]
    assert json.loads(stdout)["counts"] == {"done": 4}
    rows = attempts_by_task(tmp_path)
    out = tmp_path / "out"
    for task in moved:
        assert [r["node"] for r in rows[task]] == [victim, "n4" if victim == "n3" else "n3"], task
        assert len(records(out, task, "done")) == 1, task
    for task in {a.task for a in plan.assignments} - set(moved):
        assert len(rows[task]) == 1 and len(records(out, task, "done")) == 1, task
    faults = [r["reason"] for r in journal(tmp_path).execute("SELECT reason FROM events WHERE kind='fault'")]
    assert faults and all(f"node {victim} lost" in f for f in faults), faults


def test_a_sigkilled_head_restarts_and_runs_no_task_twice(lab: Lab, tmp_path: Path) -> None:
    """SIGKILL the head mid-plan; run it again: it finds the agents, adopts or settles every attempt,
    and every task runs and completes exactly once."""
    tasks = [{"id": f"t{k}", "gpu_share": 1.0, "work_h": 1} for k in range(8)]
    _, plan = setup(tmp_path, ["n0", "n1", "n2"], tasks, sleep=1.5, horizon_h=4)
    first = subprocess.Popen(
        head_argv(tmp_path, lab.cluster.address),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    out = tmp_path / "out"
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.starts"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 3 <= len(list(out.glob("*.starts"))) < 8, "killed mid-plan"
    time.sleep(0.5)
    second = run_head(tmp_path, lab.cluster.address)
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["counts"] == {"done": 8}
    check_each_start(tmp_path, lab, plan)
    for a in plan.assignments:
        assert len(records(out, a.task, "starts")) == 1, f"{a.task} started twice"
    db = journal(tmp_path)
    assert {r[0] for r in db.execute("SELECT state FROM attempts")} == {"succeeded"}
    assert "resume" in {r[0] for r in db.execute("SELECT kind FROM events")}


def test_inventory_and_a_plan_the_cluster_cannot_run(lab: Lab, tmp_path: Path) -> None:
    """`inventory --ray` lists every plan node with its GPUs, CPU and memory; a plan naming a node
    the cluster lacks, or a GPU a node lacks, exits 2 naming it before anything starts."""
    setup(tmp_path, ["n0", "n1", "n2"], [{"id": "t0", "gpu_share": 0.5, "work_h": 1}])
    inv = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpuplan.cli",
            "inventory",
            "--ray",
            lab.cluster.address,
            "--devices",
            str(tmp_path / "sims"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inv.returncode == 0, inv.stderr[-2000:]
    fleet = gpuplan.Problem.model_validate(json.loads(inv.stdout))
    by_id = {n.id: n for n in fleet.nodes}
    assert {"n0", "n1", "n2"} <= set(by_id)
    assert [g.id for g in by_id["n1"].gpus] == ["n1-g0", "n1-g1"] and by_id["n1"].cpu_cores == 1
    assert by_id["n1"].memory_gb and by_id["n1"].memory_gb > 0

    for missing, expect in (
        ("n9", "node 'n9' is not in the cluster"),
        ("n1-g7", "GPU 'n1-g7' is not on node 'n1'"),
    ):
        problem = json.loads((tmp_path / "problem.json").read_text())
        plan = json.loads((tmp_path / "plan.json").read_text())
        if missing == "n9":
            problem["nodes"].append({"id": "n9", "gpus": [{"id": "n9-g0", "type": "A100"}]})
            plan["assignments"][0].update(node="n9", gpus=["n9-g0"])
        else:
            problem["nodes"][1]["gpus"].append({"id": "n1-g7", "type": "A100"})
            plan["assignments"][0].update(node="n1", gpus=["n1-g7"])
        (tmp_path / "problem.json").write_text(json.dumps(problem))
        (tmp_path / "plan.json").write_text(json.dumps(plan))
        bad = run_head(tmp_path, lab.cluster.address, timeout=60)
        assert bad.returncode == 2 and expect in bad.stderr, bad.stderr[-2000:]
        assert "Traceback" not in bad.stderr and not (tmp_path / "out" / "t0.starts").exists()


def test_gpuplan_stop_ends_a_run_across_nodes(lab: Lab, tmp_path: Path) -> None:
    """`gpuplan stop` stops the tasks on every node and ends the head (exit 4, resumable); no task
    completes after the stop."""
    tasks = [{"id": f"t{k}", "gpu_share": 0.5, "work_h": 1} for k in range(4)]
    setup(tmp_path, ["n0", "n1"], tasks, sleep=30.0)
    head = subprocess.Popen(
        head_argv(tmp_path, lab.cluster.address),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    out = tmp_path / "out"
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.starts"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop = subprocess.run(
            [sys.executable, "-m", "gpuplan.cli", "stop", "--state-dir", str(tmp_path / "state")],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        stdout, stderr = head.communicate(timeout=60)
    finally:
        if head.poll() is None:
            head.kill()
    assert stop.returncode == 0, stop.stderr
    assert head.returncode == 4, stderr.decode()[-2000:]
    assert json.loads(stdout)["state"] == "stopped"
    states = {r[0] for r in journal(tmp_path).execute("SELECT state FROM attempts")}
    assert states == {"stopped"} and len(list(out.glob("*.starts"))) == 4
    assert not list(out.glob("*.done"))

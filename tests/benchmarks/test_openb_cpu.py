"""openb with CPU-only pods on the full node list: the Problem, the baselines, the checker and the
report. Tests that read the trace skip when it is absent; the rest use a tiny hand-made cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gpuplan
from benchmarks import openb, openbdata
from benchmarks.openbdata import NodeList, PlacementError, PodList, check_placement, cpu_pods_placed

needs_data = pytest.mark.skipif(
    not openbdata.has_data(), reason="shared openb trace (../shared/data) not present"
)

# n0: 1 T4 and 8 cores; c0: no GPU, 4 cores.
NODES = NodeList(["n0", "c0"], np.array([8000, 4000]), np.array([16384, 8192]), np.array([1, 0]), ["T4", ""])
# The GPU pod needs 6 cores: n0 can host it only if the 4-core CPU pod goes to c0.
PODS = PodList(
    "tiny",
    ["cpu-a", "gpu-a", "cpu-b"],
    np.array([4000, 6000, 1000]),
    np.array([1024, 1024, 1024]),
    np.array([0, 1, 0]),
    np.array([0, 1000, 0]),
    [(), (), ()],
)


def test_to_problem_with_cpu_pods() -> None:
    problem, info = openbdata.to_problem(NODES, PODS, time_limit=3, cpu_pods=True)
    assert [t.id for t in problem.tasks] == ["gpu-a", "cpu-a", "cpu-b"]
    cpu = problem.tasks[1]
    assert cpu.gpus == 0 and cpu.cpu_cores == 4.0 and cpu.optional
    assert problem.objective.placed_weight == "work"
    assert info["cpu_pods"] == 2 and info["cpu_only_skipped"] == 0 and info["gpu_pods"] == 1
    assert 2 * info["cpu_pod_weight"] == pytest.approx(openbdata.CPU_POD_WEIGHT)
    assert [n.gpu_counts for n in problem.nodes] == [{"T4": 1}, {}]
    plain, plain_info = openbdata.to_problem(NODES, PODS, time_limit=3)
    assert [t.id for t in plain.tasks] == ["gpu-a"] and plain_info["cpu_only_skipped"] == 2
    assert plain.objective.placed_weight == "gpu"


def test_gpuplan_places_every_pod_and_the_checker_agrees() -> None:
    problem, _ = openbdata.to_problem(NODES, PODS, time_limit=5, workers=1, cpu_pods=True)
    plan = gpuplan.solve(problem, time_limit_s=5, workers=1)
    placement = openbdata.plan_to_placement(plan)
    assert placement == {"gpu-a": ["n0/T4/0"], "cpu-a": ["c0"], "cpu-b": ["n0"]}
    check_placement(NODES, PODS, placement)
    assert cpu_pods_placed(PODS, placement) == 2
    assert openbdata.metrics(NODES, PODS, placement)["gpu_placed"] == 1.0


def test_baselines_place_cpu_pods_by_cpu_and_memory() -> None:
    """Best-fit puts the first CPU pod on the GPU-less node (it has no free GPU), random-fit on a
    random node with room; both results check, and without cpu_pods nothing changes."""
    best = openbdata.best_fit(NODES, PODS, cpu_pods=True)
    assert best == {"cpu-a": ["c0"], "gpu-a": ["n0/T4/0"], "cpu-b": ["n0"]}
    for seed in range(5):
        rnd = openbdata.random_fit(NODES, PODS, seed, cpu_pods=True)
        check_placement(NODES, PODS, rnd)
        assert cpu_pods_placed(PODS, rnd) >= 1
    assert openbdata.best_fit(NODES, PODS) == {"gpu-a": ["n0/T4/0"]}


def test_checker_rejects_bad_cpu_pod_placements() -> None:
    for bad in (
        {"cpu-a": ["c0"], "cpu-b": ["c0"], "gpu-a": ["n0/T4/0"]},  # 5 cores on a 4-core node
        {"cpu-a": ["n0"], "gpu-a": ["n0/T4/0"]},  # 10 cores on an 8-core node
        {"cpu-a": ["nowhere"]},
        {"cpu-a": ["c0", "n0"]},
        {"cpu-a": ["n0/T4/0"]},
    ):
        with pytest.raises(PlacementError):
            check_placement(NODES, PODS, bad)


def test_cpu_markdown_table(tmp_path: Path) -> None:
    rec = {
        "pod_list": "cpu050",
        "nodes": 1523,
        "gpu_pods": 7064,
        "cpu_pods": 375,
        "gpu_requested": 6086.8,
        "gpu_placed": 5964.27,
        "gpu_upper_bound": 5999.66,
        "best_fit_gpu_placed": 5575.95,
        "random_fit_gpu_placed": 5489.64,
        "cpu_pods_placed": 375,
        "best_fit_cpu_pods_placed": 375,
        "random_fit_cpu_pods_placed": 375,
        "wall_s": 8.2,
        "status": "feasible",
        "check": "ok",
        "time_limit_s": 10.0,
        "commit": "abc",
    }
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    table = openb.markdown(path)
    assert "| cpu050 | 1523 | 7064 | 375 | 6086.8 | 5964.27 | 5999.66 | 99.41% |" in table


@needs_data
def test_all_nodes_list() -> None:
    nodes = openbdata.read_nodes(all_nodes=True)
    assert len(nodes) == 1523 and int((nodes.gpu == 0).sum()) == 310 and nodes.total_gpus == 6212
    pods = openbdata.read_pods("cpu050")
    problem, info = openbdata.to_problem(nodes, pods, cpu_pods=True)
    assert info["cpu_pods"] == int((~pods.is_gpu).sum()) == 375
    assert len(problem.tasks) == len(pods)
    for placement in (
        openbdata.best_fit(nodes, pods, cpu_pods=True),
        openbdata.random_fit(nodes, pods, 0, cpu_pods=True),
    ):
        check_placement(nodes, pods, placement)
        assert 0 < cpu_pods_placed(pods, placement) <= 375

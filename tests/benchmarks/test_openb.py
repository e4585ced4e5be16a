"""openb trace: readers, the Problem, the best-fit and random-fit baselines, the independent checker and
the metrics. Tests that read the trace (<repo>/../shared/data, or $GPUPLAN_SHARED) skip when it is
absent; the rest use tiny hand-made clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import openbdata
from benchmarks.openbdata import NodeList, PlacementError, PodList, check_placement, metrics

needs_data = pytest.mark.skipif(
    not openbdata.has_data(), reason="shared openb trace (../shared/data) not present"
)


def make_nodes(*rows: tuple[str, int, int, int, str]) -> NodeList:
    """Nodes from (sn, cpu_milli, memory_mib, gpu, model) rows."""
    sn, cpu, mem, gpu, model = zip(*rows, strict=True)
    return NodeList(list(sn), np.array(cpu), np.array(mem), np.array(gpu), list(model))


def make_pods(*rows: tuple[str, int, int, int, int, str]) -> PodList:
    """Pods from (name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec) rows."""
    name, cpu, mem, k, milli, spec = zip(*rows, strict=True)
    specs = [tuple(s.split("|")) if s else () for s in spec]
    return PodList("tiny", list(name), np.array(cpu), np.array(mem), np.array(k), np.array(milli), specs)


# Two nodes: n0 with 2 T4 (8 cores, 16 GiB), n1 with 1 P100 (4 cores, 8 GiB).
NODES = make_nodes(("n0", 8000, 16384, 2, "T4"), ("n1", 4000, 8192, 1, "P100"))
POD_ROWS = (
    ("gang", 2000, 2048, 2, 1000, ""),  # 2 whole GPUs: only n0 has two
    ("half-a", 1000, 1024, 1, 500, "P100"),
    ("half-b", 1000, 1024, 1, 500, ""),
    ("big", 1000, 1024, 1, 600, ""),  # no room once the others are in
    ("cpu-only", 1000, 1024, 0, 0, ""),
)
PODS = make_pods(*POD_ROWS)


# --------------------------------------------------------------------------------------------------
# The trace itself


@needs_data
def test_default_list_counts() -> None:
    nodes, pods = openbdata.read_nodes(), openbdata.read_pods("default")
    assert len(nodes) == 1213 and nodes.total_gpus == 6212
    assert len(set(nodes.model)) == 7
    assert len(pods) == 8152 and int(pods.is_gpu.sum()) == 7064
    assert set(np.unique(pods.num_gpu)) == {0, 1, 2, 4, 8}
    assert np.all(pods.gpu_milli[pods.num_gpu > 1] == 1000)
    assert openbdata.pod_list_names()[0] == "default"


@needs_data
def test_multigpu_list_has_no_spec_column() -> None:
    pods = openbdata.read_pods("multigpu20")
    assert pods.list_name == "multigpu20"
    assert all(spec == () for spec in pods.gpu_spec)
    assert int((pods.num_gpu > 1).sum()) > 60


@needs_data
def test_baselines_on_default_list_are_valid() -> None:
    nodes, pods = openbdata.read_nodes(), openbdata.read_pods("default")
    requested = int(pods.gpu_request_milli.sum()) / 1000
    for placement in (openbdata.best_fit(nodes, pods), openbdata.random_fit(nodes, pods, seed=1)):
        check_placement(nodes, pods, placement)
        m = metrics(nodes, pods, placement)
        assert 0 < m["gpu_placed"] <= min(requested, nodes.total_gpus)
        assert 0 < m["pods_placed"] <= 7064
        assert m["gpus_idle"] + m["gpus_fragmented"] <= nodes.total_gpus


@needs_data
def test_to_problem_on_default_list() -> None:
    nodes, pods = openbdata.read_nodes(), openbdata.read_pods("default")
    problem, info = openbdata.to_problem(nodes, pods, time_limit=5, workers=1, seed=0)
    assert info["gpu_pods"] == len(problem.tasks) == 7064
    assert info["cpu_only_skipped"] == 1088
    assert len(problem.all_gpus()) == 6212
    assert info["gpu_requested"] == pytest.approx(sum(t.gpus * t.gpu_share for t in problem.tasks))


# --------------------------------------------------------------------------------------------------
# Readers and the Problem, on tiny data


def test_read_pods_five_columns_and_spec_dedup(tmp_path: Path) -> None:
    path = tmp_path / "openb_pod_list_mini.csv"
    path.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
        "p0,1000,512,1,250,V100M16|V100M32|V100M32\n"
        "p1,2000,512,8,1000,\n"
    )
    pods = openbdata.read_pods(path)
    assert pods.list_name == "mini"
    assert pods.gpu_spec == [("V100M16", "V100M32"), ()]
    assert list(pods.gpu_request_milli) == [250, 8000]
    bad = tmp_path / "openb_pod_list_bad.csv"
    bad.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,512,2,500\n")
    with pytest.raises(ValueError, match="multi-GPU pod 1000"):
        openbdata.read_pods(bad)


def test_to_problem_tiny() -> None:
    pods = make_pods(*POD_ROWS, ("ghost", 1, 1, 1, 100, "H100"))
    problem, info = openbdata.to_problem(NODES, pods, time_limit=3, workers=1, seed=7)
    assert [t.id for t in problem.tasks] == ["gang", "half-a", "half-b", "big", "ghost"]
    gang, half_a, *_, ghost = problem.tasks
    assert gang.gpus == 2 and gang.gpu_share == 1 and gang.allowed_types is None
    assert half_a.gpu_share == 0.5 and half_a.allowed_types == ["P100"] and half_a.cpu_cores == 1.0
    assert all(t.optional for t in problem.tasks)
    assert ghost.allowed_types == ["H100"]  # declared, but no node holds one: it cannot be placed
    assert info["unplaceable_spec"] == ["ghost"] and info["spec_models_dropped"] == {"H100": 1}
    assert info["cpu_only_skipped"] == 1 and info["gpu_requested"] == pytest.approx(3.7)
    assert {g.id for _, g in problem.all_gpus()} == {"n0/T4/0", "n0/T4/1", "n1/P100/0"}
    assert problem.objective.kind == "placed" and problem.options.seed == 7


def test_scale_suffixes_names() -> None:
    problem, info = openbdata.to_problem(NODES, PODS, scale=2, time_limit=3)
    assert [n.id for n in problem.nodes] == ["n0#0", "n1#0", "n0#1", "n1#1"]
    assert [t.id for t in problem.tasks][:2] == ["gang#0", "half-a#0"]
    assert info["gpu_pods"] == 8 and info["gpus"] == 6


# --------------------------------------------------------------------------------------------------
# Checker and metrics


def test_metrics_tiny() -> None:
    placement = {"gang": ["n0/T4/0", "n0/T4/1"], "half-a": ["n1/P100/0"]}
    assert metrics(NODES, PODS, placement) == {
        "pods_placed": 2,
        "gpu_placed": 2.5,
        "gpus_idle": 0,
        "gpus_fragmented": 1,
    }
    assert metrics(NODES, PODS, {}) == {
        "pods_placed": 0,
        "gpu_placed": 0,
        "gpus_idle": 3,
        "gpus_fragmented": 0,
    }
    full = {**placement, "half-b": ["n1/P100/0"]}
    assert metrics(NODES, PODS, full)["gpus_fragmented"] == 0


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ({"half-a": ["n1/P100/0"], "half-b": ["n1/P100/0"], "big": ["n1/P100/0"]}, "share 1600 milli"),
        ({"gang": ["n0/T4/0", "n0/T4/1"], "big": ["n0/T4/1"]}, "whole-GPU pod gang shares it"),
        ({"gang": ["n0/T4/0", "n1/P100/0"]}, "gang spread over nodes"),
        ({"gang": ["n0/T4/0"]}, "asks for 2 GPU"),
        ({"gang": ["n0/T4/0", "n0/T4/0"]}, "listed twice"),
        ({"half-a": ["n0/T4/0"]}, "not in its spec P100"),
        ({"half-b": ["n0/T4/7"]}, "unknown GPU"),
        ({"nobody": ["n0/T4/0"]}, "not in pod list"),
        ({"cpu-only": []}, "CPU-only pod placed"),
    ],
)
def test_check_rejects(placement: dict[str, list[str]], message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        check_placement(NODES, PODS, placement)


def test_check_rejects_node_cpu_and_memory() -> None:
    nodes = make_nodes(("n", 3000, 3000, 4, "T4"))
    pods = make_pods(*[(f"p{i}", 1000, 1000, 1, 100, "") for i in range(4)])
    placement = {f"p{i}": [f"n/T4/{i}"] for i in range(4)}
    with pytest.raises(PlacementError) as err:
        check_placement(nodes, pods, placement)
    assert "CPU 4000 milli used > 3000" in str(err.value) and "memory 4000 MiB used > 3000" in str(err.value)
    del placement["p3"]
    check_placement(nodes, pods, placement)


# --------------------------------------------------------------------------------------------------
# Baselines on tiny data


def test_best_fit_packs_the_fullest_gpu() -> None:
    nodes = make_nodes(("small", 8000, 8192, 2, "T4"), ("large", 64000, 65536, 8, "T4"))
    pods = make_pods(
        ("a", 1000, 1024, 1, 300, ""), ("b", 1000, 1024, 1, 600, ""), ("c", 1000, 1024, 1, 100, "")
    )
    placement = openbdata.best_fit(nodes, pods)
    # The small node is left with less; each later pod joins the fullest GPU it fits on.
    assert placement == {"a": ["small/T4/0"], "b": ["small/T4/0"], "c": ["small/T4/0"]}
    check_placement(nodes, pods, placement)


def test_baselines_tiny() -> None:
    best = openbdata.best_fit(NODES, PODS)
    check_placement(NODES, PODS, best)
    assert best["gang"] == ["n0/T4/0", "n0/T4/1"] and "big" not in best
    assert metrics(NODES, PODS, best)["gpu_placed"] == 3.0
    for seed in range(5):
        rand = openbdata.random_fit(NODES, PODS, seed=seed)
        check_placement(NODES, PODS, rand)
        assert rand == openbdata.random_fit(NODES, PODS, seed=seed)
        assert "cpu-only" not in rand


# --------------------------------------------------------------------------------------------------
# The engine on a tiny instance (optimum: the gang, then both halves on the P100; 3 of 3.6 GPUs)


def test_engine_tiny() -> None:
    import gpuplan

    problem, info = openbdata.to_problem(NODES, PODS, time_limit=5, workers=1, seed=0)
    plan = gpuplan.solve(problem, time_limit_s=5, workers=1, seed=0)
    placement = openbdata.plan_to_placement(plan)
    check_placement(NODES, PODS, placement)
    assert metrics(NODES, PODS, placement)["gpu_placed"] == pytest.approx(3.0)
    assert plan.objective == pytest.approx(info["gpu_requested"] - 3.0)
    assert plan.bound is not None and plan.bound <= plan.objective + 1e-9

"""The plan from whole GPU configurations: a plan, tier-optimal where nodes are one of a kind, and
what the node-pattern dive loses on a fleet of many alike nodes it keeps."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from gpuplan.backends.fleet_brute import brute_force
from gpuplan.bounds.node_patterns import node_pattern_bound
from gpuplan.heuristics.config_plan import config_plan
from gpuplan.heuristics.pattern_plan import pattern_plan
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
from tests.bounds.test_node_patterns import PATTERN_TYPES, pattern_fleets, pattern_tasks
from tests.strategies import SETTINGS


@SETTINGS
@given(pattern_fleets())
def test_the_config_plan_breaks_no_rule(data: dict) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    pat = node_pattern_bound(p, lexicographic=True)
    assert pat is not None
    plan = config_plan(p, pat, deadline=time.monotonic() + 10)
    assert plan is not None
    assert not p.violations(plan.assign)


@st.composite
def one_of_a_kind_fleets(draw: st.DrawFn) -> dict:
    """Tiny fleets whose nodes all differ (each node class is one node, so merging a class's nodes
    loses nothing), with two priority tiers weighed exactly."""
    cpus = draw(st.lists(st.sampled_from([4, 6, 8, 64]), min_size=1, max_size=3, unique=True))
    nodes = [
        {
            "id": f"n{i}",
            "gpu_counts": {draw(st.sampled_from(["A", "B"])): draw(st.integers(1, 2))},
            "cpu_cores": cpu,
            "memory_gb": draw(st.sampled_from([32, 512])),
        }
        for i, cpu in enumerate(cpus)
    ]
    return {"gpu_types": PATTERN_TYPES, "nodes": nodes, "tasks": pattern_tasks(draw, work_h=(1.0,))}


@SETTINGS
@given(one_of_a_kind_fleets())
def test_with_one_node_per_class_it_places_what_the_optimum_places_per_tier(data: dict) -> None:
    """Each class program is then its node's exact pattern problem, so the plan places, tier by tier
    from the highest, as many tasks as the brute-force optimum of the weighed tiers."""
    p = compile_fleet(Problem.model_validate(data)).program
    ref = brute_force(p)
    assume(ref is not None)
    pat = node_pattern_bound(p, lexicographic=True)
    assert pat is not None
    plan = config_plan(p, pat, deadline=time.monotonic() + 10)
    assert plan is not None
    assert not p.violations(plan.assign)
    if pat.tier_of_shape is None:  # one tier: the count
        assert int((plan.assign[:, 0] >= 0).sum()) == int((ref[1][:, 0] >= 0).sum())
    else:
        assert list(pat.tier_counts(plan.assign)) == list(pat.tier_counts(ref[1]))


def _alike_nodes() -> dict:
    """Twelve alike nodes of 2 GPUs of 16 GB and 8 cores, and per node: one whole-GPU task of 4
    cores that any GPU holds, and a task of half a GPU and 8 GB with 2 cores; plus, for the
    leftover room, halves of 8 GB with 4 cores (two of them fill a GPU and a node's cores)."""
    nodes = [{"id": f"n{i}", "gpu_counts": {"B": 2}, "cpu_cores": 8, "memory_gb": 64} for i in range(12)]
    tasks = []
    for i in range(12):
        tasks.append({"id": f"w{i}", "gpus": 1, "cpu_cores": 4, "gpu_memory_gb": 16, "work_h": 1.0})
        tasks.append({"id": f"h{i}", "gpus": 1, "gpu_share": 0.5, "cpu_cores": 2, "gpu_memory_gb": 8})
        tasks.append({"id": f"q{i}", "gpus": 1, "gpu_share": 0.5, "cpu_cores": 4, "gpu_memory_gb": 8})
    for t in tasks:
        t.update(optional=True, work_h=1.0)
    return {"gpu_types": [{"name": "B", "memory_gb": 16}], "nodes": nodes, "tasks": tasks}


def test_it_places_what_the_lp_allows_on_alike_nodes() -> None:
    """The class program places 30 tasks, the LP's count, with every core in use; the split keeps
    them only by pairing GPUs of one make-up (two halves of 4 cores alone on a node, a whole GPU with
    two halves of 2 cores): GPUs filled heavy and light in turn (6 cores each) fit no node with
    another GPU, and placed 27."""
    p = compile_fleet(Problem.model_validate(_alike_nodes())).program
    pat = node_pattern_bound(p)
    assert pat is not None and pat.converged
    plan = config_plan(p, pat, deadline=time.monotonic() + 10)
    assert plan is not None
    assert not p.violations(plan.assign)
    placed = int((plan.assign[:, 0] >= 0).sum())
    lp = float(p.penalty.sum() - pat.bound) / float(p.penalty[0])  # tasks the LP places
    assert placed >= int(np.floor(lp + 1e-6))
    assert placed >= int((pattern_plan(p, pat).assign[:, 0] >= 0).sum())


def test_a_stop_request_ends_it_at_once() -> None:
    """With a stop requested, the class program, the split and the laying all return at once, and
    what comes back (if anything) is still a plan."""
    from gpuplan.interrupt import watching

    data = _alike_nodes()
    data["nodes"] = [dict(n, id=f"n{i}") for i in range(40) for n in data["nodes"][:1]]
    p = compile_fleet(Problem.model_validate(data)).program
    pat = node_pattern_bound(p)
    assert pat is not None
    began = time.monotonic()
    with watching(lambda: True):
        plan = config_plan(p, pat, deadline=time.monotonic() + 30)
    assert time.monotonic() - began < 1.0
    assert plan is None or not p.violations(plan.assign)

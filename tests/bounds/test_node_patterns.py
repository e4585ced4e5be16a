"""The node-pattern bound never exceeds the optimum, and its plan is a plan."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from gpuplan.backends.fleet_brute import brute_force
from gpuplan.bounds.fleet import fleet_lower_bound
from gpuplan.bounds.node_patterns import applicable, node_pattern_bound
from gpuplan.heuristics.fleet_greedy import honour_priorities
from gpuplan.heuristics.pattern_plan import pattern_plan
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
from tests.strategies import SETTINGS

#: The GPU types of `pattern_fleets`.
PATTERN_TYPES = [{"name": "A", "memory_gb": 40, "cost_per_hour": 2.0}, {"name": "B", "memory_gb": 16}]


def pattern_tasks(draw: st.DrawFn, work_h: tuple[float, ...] = (1.0, 2.5)) -> list[dict]:
    """1 to 5 optional tasks of priority 0 or 1: singles (shares, GPU memory) and gangs of 2, with
    CPU and host memory, and a `work_h` drawn from `work_h`."""
    tasks = []
    for i in range(draw(st.integers(1, 5))):
        gang = draw(st.sampled_from([1, 1, 1, 2]))
        tasks.append(
            {
                "id": f"t{i}",
                "gpus": gang,
                "gpu_share": 1.0 if gang > 1 else draw(st.sampled_from([0.25, 0.5, 1.0])),
                "gpu_memory_gb": draw(st.sampled_from([0, 8, 16, 24])),
                "cpu_cores": draw(st.sampled_from([0, 2, 4])),
                "memory_gb": draw(st.sampled_from([0, 16, 32])),
                "work_h": draw(st.sampled_from(list(work_h))),
                "priority": draw(st.integers(0, 1)),
                "optional": True,
            }
        )
    return tasks


@st.composite
def pattern_fleets(draw: st.DrawFn) -> dict:
    """Tiny fleets the bound applies to: nodes of one GPU type each, CPU and host memory that bind,
    and the tasks of `pattern_tasks`."""
    nodes = [
        {
            "id": f"n{i}",
            "gpu_counts": {draw(st.sampled_from(["A", "B"])): draw(st.integers(1, 2))},
            "cpu_cores": draw(st.sampled_from([4, 8, 64])),
            "memory_gb": draw(st.sampled_from([32, 64, 512])),
        }
        for i in range(draw(st.integers(1, 3)))
    ]
    return {"gpu_types": PATTERN_TYPES, "nodes": nodes, "tasks": pattern_tasks(draw)}


@SETTINGS
@given(pattern_fleets())
def test_the_node_pattern_bound_is_below_the_optimum(data: dict) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    assert applicable(p)
    ref = brute_force(p)
    assume(ref is not None)
    pat = node_pattern_bound(p)
    assert pat is not None
    best = ref[0]
    assert pat.bound <= best + 1e-6 * max(1.0, abs(best))
    st_ = pattern_plan(p, pat)
    assert not p.violations(st_.assign)


def test_node_patterns_see_what_pooled_capacity_misses() -> None:
    """Two nodes of 2 GPUs and 8 cores; three tasks of 1 GPU and 6 cores: the pooled LP places 2.67
    of them (16 cores), a node holds one; the pattern bound says 2, and its plan places 2."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 64} for i in range(2)],
        "tasks": [
            {"id": f"t{i}", "gpus": 1, "cpu_cores": 6, "work_h": 1, "optional": True} for i in range(3)
        ],
    }
    p = compile_fleet(Problem.model_validate(data)).program
    drop = float(p.penalty[0])
    pat = node_pattern_bound(p)
    assert pat is not None
    assert pat.bound >= drop - 1e-6 * drop
    assert fleet_lower_bound(p).bound < 0.5 * drop
    st_ = pattern_plan(p, pat)
    assert int((st_.assign[:, 0] >= 0).sum()) == 2
    assert np.isclose(p.objective(st_.assign), brute_force(p)[0])  # type: ignore[index]


def test_it_does_not_apply_to_required_tasks() -> None:
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n0", "gpu_counts": {"A": 2}}],
        "tasks": [{"id": "t0", "gpus": 1, "work_h": 1}],
    }
    p = compile_fleet(Problem.model_validate(data)).program
    assert node_pattern_bound(p) is None


@SETTINGS
@given(pattern_fleets())
def test_the_lexicographic_stages_bound_the_weighted_optimum(data: dict) -> None:
    """With priority tiers weighed (p_t = B_j + e_t), the stages' bound stays below the optimum, and
    their plan, after the priority repair, is a plan no left-out task could improve on its own."""
    p = compile_fleet(Problem.model_validate(data)).program
    ref = brute_force(p)
    assume(ref is not None)
    pat = node_pattern_bound(p, lexicographic=True)
    assert pat is not None
    best = ref[0]
    assert pat.bound <= best + 1e-6 * max(1.0, abs(best))
    assign, _ = honour_priorities(p, pattern_plan(p, pat).assign)
    assert not p.violations(assign)
    assert pat.bound <= p.objective(assign) + 1e-6 * max(1.0, abs(best))
    _, placed = honour_priorities(p, assign)
    assert placed == 0


def test_the_stages_place_the_higher_tier_first() -> None:
    """One node of 2 GPUs; two whole-GPU tasks of priority 0 and a gang of 2 of priority 1: the
    gang goes first, the bound says so (the two small tasks dropped), and the plan places it."""
    data = {
        "gpu_types": [{"name": "A", "memory_gb": 40}],
        "nodes": [{"id": "n0", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 64}],
        "tasks": [
            {"id": "g", "gpus": 2, "work_h": 1, "priority": 1, "optional": True},
            *({"id": f"t{i}", "gpus": 1, "work_h": 1, "priority": 0, "optional": True} for i in range(2)),
        ],
    }
    p = compile_fleet(Problem.model_validate(data)).program
    pat = node_pattern_bound(p, lexicographic=True)
    assert pat is not None and pat.need is not None
    assert list(pat.need) == [1]
    low = float(p.penalty[1] + p.penalty[2])
    assert pat.bound >= low - 1e-6 * low
    st_ = pattern_plan(p, pat)
    assert st_.assign[0, 0] >= 0
    assert np.isclose(p.objective(st_.assign), brute_force(p)[0])  # type: ignore[index]


def test_the_dive_never_counts_a_task_twice() -> None:
    """The columns the dive fixes ask, shape by shape, for no more tasks than there are: the ones it
    rounds up are cut to the tasks left, so the tier rows see what is really still missing (a
    column asking for tasks already taken left top-tier tasks out unseen)."""
    from benchmarks.size_ladder import ladder_problem
    from gpuplan.api import parse_problem

    p = compile_fleet(parse_problem(ladder_problem(200, seed=0, priorities=True)), flat_tiers=True).program
    pat = node_pattern_bound(p, lexicographic=True)
    assert pat is not None and pat.converged
    asked = np.zeros(pat.master.sh.count.size)
    fixed = pat.dive()
    for _, x, _, n in fixed:
        asked += n * x
    assert np.all(asked <= pat.master.sh.count)
    assert sum(n for *_, n in fixed) <= pat.master.m_b.sum()

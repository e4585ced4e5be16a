"""Fragmentation-aware placement: the incremental change of the fragmentation equals the formula
recomputed from scratch; the event schedule places where it grows least and so starts a task best
fit would hold back; its plans break no rule; the strategy tries it only where placements can
strand capacity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gpuplan.heuristics.event_schedule import event_schedule
from gpuplan.heuristics.fragmentation import Fragmentation
from gpuplan.heuristics.list_schedule import RULES
from gpuplan.program.schedule import violations
from tests.strategies import random_schedule, schedule_of

INF = float("inf")
TYPES = [{"name": "A", "memory_gb": 80}]


def fragmentation(
    free: list[float], cpu: float, ram: float, mix: list[tuple[int, float, float, float, float]]
) -> float:
    """F of one node straight from the module's formula: `mix` is (k, share, cpu, ram, popularity)."""
    total = 0.0
    for k, s, c, r, pop in mix:
        fits = sum(f >= s - 1e-9 for f in free) >= k and c <= cpu and r <= ram
        total += pop * (sum(f for f in free if f < s - 1e-9) if fits else sum(free))
    return total


@settings(max_examples=150, deadline=None)
@example(used=[0.0, 0.0], pick=0, share=0.25, cpu_free=16, cpu_task=0)  # the gang then fits no more
@example(used=[0.0, 0.5], pick=0, share=0.5, cpu_free=3, cpu_task=2)  # nor the CPU-heavy task
@given(
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0]), min_size=1, max_size=4),
    st.integers(0, 3),
    st.sampled_from([0.25, 0.5, 1.0]),
    st.integers(0, 16),
    st.integers(0, 8),
)
def test_growth_equals_the_formula_before_and_after(
    used: list[float], pick: int, share: float, cpu_free: int, cpu_task: int
) -> None:
    """One node with len(used) GPUs (used shares), a task mix of the program's tasks: the growth
    of F when a task of `share` and `cpu_task` CPU takes GPU `pick` is F after minus F before."""
    free = [1.0 - u for u in used]
    pick = pick % len(free)
    if free[pick] < share or cpu_free < cpu_task:
        return
    nodes = [{"id": "n", "gpu_counts": {"A": len(free)}, "cpu_cores": 16}]
    tasks = [
        {"id": "a", "gpu_share": 0.5, "cpu_cores": 2, "duration_h": {"A": 1}},
        {"id": "b", "gpu_share": 0.5, "cpu_cores": 2, "duration_h": {"A": 1}},
        {"id": "c", "gpu_share": 0.25, "cpu_cores": 8, "duration_h": {"A": 1}},
        {"id": "d", "gpus": min(2, len(free)), "cpu_cores": 1, "duration_h": {"A": 1}},
        {"id": "x", "gpu_share": share, "cpu_cores": cpu_task, "duration_h": {"A": 1}},
    ]
    sp = schedule_of(
        {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}, [0] * 5, [INF] * 5, [INF] * 5, [1] * 5, []
    )
    f = sp.fleet
    slots = np.arange(f.n_gpus).reshape(1, -1)
    frag = Fragmentation(sp, slots, np.array([f.n_gpus]))
    free_share = np.array(free)
    mix = [(1, 0.5, 2, 0, 2 / 5), (1, 0.25, 8, 0, 1 / 5), (min(2, len(free)), 1.0, 1, 0, 1 / 5)]
    mix.append((1, share, cpu_task, 0, 1 / 5))
    got = frag.growth(
        np.array([0]),
        free_share,
        np.array([free[pick]]),
        share,
        float(cpu_task),
        0.0,
        np.array([float(cpu_free)]),
        np.array([INF]),
    )
    after = list(free)
    after[pick] -= share
    want = fragmentation(after, cpu_free - cpu_task, INF, mix) - fragmentation(free, cpu_free, INF, mix)
    assert got[0] == pytest.approx(want, abs=1e-9)


def test_the_least_fragmenting_node_lets_the_last_task_start_at_once() -> None:
    """Two nodes of one GPU; shares 0.3, 0.5, 0.7 and 0.5 arrive in that order. Best fit puts 0.5 on
    top of 0.3 (0.2 left there, then 0.7 takes the other GPU: 0.3 left), so the last 0.5 waits an
    hour; fragmentation-aware placement puts the first 0.5 on the empty GPU (0.5 is left where the
    mix still fits), 0.7 on top of 0.3, and the last 0.5 starts at once."""
    nodes = [{"id": "n1", "gpu_counts": {"A": 1}}, {"id": "n2", "gpu_counts": {"A": 1}}]
    shares = [0.3, 0.5, 0.7, 0.5]
    tasks = [{"id": f"t{i}", "gpu_share": s, "duration_h": {"A": 1}} for i, s in enumerate(shares)]
    sp = schedule_of(
        {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}, [0] * 4, [INF] * 4, [INF] * 4, [1] * 4, []
    )
    fit_assign, fit_start = event_schedule(sp, "fifo")
    frag_assign, frag_start = event_schedule(sp, "fifo", placement="frag")
    assert violations(sp, fit_assign, fit_start) == [] and violations(sp, frag_assign, frag_start) == []
    assert fit_start.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert fit_assign[0, 0] == fit_assign[1, 0] != fit_assign[2, 0]
    assert frag_start.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert frag_assign[0, 0] == frag_assign[2, 0] != frag_assign[1, 0] == frag_assign[3, 0]


def test_an_unknown_placement_is_refused() -> None:
    sp = random_schedule(5, 2, seed=0, deadlines=False)
    with pytest.raises(ValueError, match="placement"):
        event_schedule(sp, "spt", placement="worst")


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", [1, 4])
def test_fragmentation_aware_plans_break_no_rule(rule: str, seed: int) -> None:
    sp = random_schedule(300, 12, seed=seed, deadlines=False)
    assign, start = event_schedule(sp, rule, placement="frag")
    assert violations(sp, assign, start) == []
    assert (assign[~sp.fleet.optional, 0] >= 0).all()


def test_the_strategy_tries_it_only_where_placements_can_strand_capacity() -> None:
    """Shared GPUs: both placements are tried and recorded. One whole GPU per node and per task (a
    job shop): no fragmentation-aware try (every placement is alike for it)."""
    import gpuplan

    nodes = [{"id": "n1", "gpu_counts": {"A": 1}}, {"id": "n2", "gpu_counts": {"A": 1}}]
    shares = [0.3, 0.5, 0.7, 0.5]
    tasks = [{"id": f"t{i}", "gpu_share": s, "work_h": 1} for i, s in enumerate(shares)]
    data = {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks, "objective": {"kind": "completion_time"}}
    plan = gpuplan.solve(data, solver="greedy", time_limit_s=5.0)
    assert any(k.startswith("event_frag_") for k in plan.stats)
    assert "fragmentation-aware" in plan.solver_reason
    whole = {**data, "tasks": [{"id": f"t{i}", "work_h": 1 + i} for i in range(4)]}
    plan = gpuplan.solve(whole, solver="greedy", time_limit_s=5.0)
    assert not any(k.startswith("event_frag_") for k in plan.stats)


def test_the_mix_keeps_the_most_common_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for one profile the mix is the most common one alone, at its share of all GPU
    tasks: F counts what it cannot use and nothing for the rarer profile."""
    import gpuplan.heuristics.fragmentation as fragmentation_module

    monkeypatch.setattr(fragmentation_module, "MIX_PROFILES", 1)
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]
    tasks = [{"id": f"h{i}", "gpu_share": 0.5, "duration_h": {"A": 1}} for i in range(3)]
    tasks.append({"id": "q", "gpu_share": 0.25, "duration_h": {"A": 1}})
    sp = schedule_of(
        {"gpu_types": TYPES, "nodes": nodes, "tasks": tasks}, [0] * 4, [INF] * 4, [INF] * 4, [1] * 4, []
    )
    frag = Fragmentation(sp, np.arange(sp.fleet.n_gpus).reshape(1, -1), np.array([sp.fleet.n_gpus]))
    assert frag.s.tolist() == pytest.approx([0.5]) and frag.pop.tolist() == [0.75]
    # a quarter task on a GPU with 0.6 free leaves 0.35 there: too little for a half
    got = frag.growth(
        np.array([0]), np.array([0.6, 1.0]), np.array([0.6]), 0.25, 0.0, 0.0, np.array([INF]), np.array([INF])
    )
    assert got[0] == pytest.approx(0.75 * 0.35)

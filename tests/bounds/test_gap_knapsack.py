"""The knapsack Lagrangian (assignment constraints relaxed): bound, forcing penalties and fixing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpuplan.bounds.gap import lp_relaxation
from gpuplan.bounds.knapsack import applicable, knapsack_fixable, knapsack_lagrangian, knapsacks
from tests.oracles import feasible_plans, knapsack_by_enumeration
from tests.strategies import (
    SETTINGS,
    knapsack_from,
    multipliers,
    one_resource_matrices,
    program_with_drops,
)


def _tol(v: float) -> float:
    return 1e-6 * max(1.0, abs(v))


@SETTINGS
@given(
    one_resource_matrices(),
    multipliers(-40, 40),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.lists(st.integers(0, 60), min_size=7, max_size=7),
)
def test_bound_and_penalties_hold_for_every_solution(m, u0, optional, penalty):
    """L(u) <= every feasible objective for any start u; L(u) + penalty[t, g] <= the objective of
    every feasible solution using (t, g); fixing at opt + 1 keeps every optimal pair."""
    p = program_with_drops(m, optional, penalty)
    assert applicable(p)
    sols = feasible_plans(p)
    assume(sols)
    kl = knapsack_lagrangian(p, np.resize(np.array(u0), p.n_tasks), None, time.monotonic() + 2, iterations=60)
    opt = min(v for _, v in sols)
    assert kl.bound_int <= opt + _tol(opt)
    for a, v in sols:
        for t in np.flatnonzero(a >= 0):
            assert kl.bound_int + kl.penalty[t, a[t]] <= v + _tol(v)
    fixed = knapsack_fixable(p, kl, float(opt + 1))
    for a, v in sols:
        if v == opt:
            placed = np.flatnonzero(a >= 0)
            assert not fixed[placed, a[placed]].any()


@SETTINGS
@given(one_resource_matrices())
def test_lp_duals_start_gives_at_least_the_lp_bound(m):
    """From the LP's assignment duals the knapsack bound is never weaker than the LP bound."""
    p = program_with_drops(m)
    assert applicable(p)
    lp = lp_relaxation(p, time.monotonic() + 5)
    assume(lp is not None and lp.complete and lp.u is not None)  # an infeasible LP has no duals
    kl = knapsack_lagrangian(p, lp.u, None, time.monotonic() + 2, iterations=30)
    assert kl.bound_int >= lp.lp_value - 1e-5 * max(1.0, abs(lp.lp_value))


@SETTINGS
@given(
    st.lists(st.integers(-20, 20), min_size=1, max_size=8),
    st.lists(st.integers(0, 9), min_size=8, max_size=8),
    st.integers(0, 25),
)
def test_knapsack_matches_enumeration(w, a, cap):
    """The compiled knapsacks, on two GPUs at once (the second with no eligible task), against
    enumeration."""
    n = len(w)
    w_arr = np.array(w, dtype=np.float64)
    a_arr = np.array(a[:n], dtype=np.int64)
    z, chosen = knapsacks(
        np.stack([w_arr, w_arr], axis=1),
        np.stack([a_arr, a_arr], axis=1),
        np.stack([np.ones(n, dtype=bool), np.zeros(n, dtype=bool)], axis=1),
        np.array([cap, cap]),
    )
    best = knapsack_by_enumeration(w_arr, a_arr, np.ones(n, dtype=bool), cap)
    assert z[0] == best and z[1] == 0.0 and not chosen[:, 1].any()
    assert a_arr[chosen[:, 0]].sum() <= cap and w_arr[chosen[:, 0]].sum() == best


def test_multi_resource_programs_are_left_alone():
    m = {"matrix": {"cost": [[1, 2]], "load": [[[1, 1]], [[1, 1]]], "capacity": [[1, 1], [1, 1]]}}
    assert not applicable(program_with_drops(m))


@pytest.mark.clock
def test_auto_honours_the_deadline_on_a_tight_type_d_instance(tmp_path):
    """A 20x200 type-D-like instance (the knapsack phase runs): the whole process ends near its limit."""
    rng = np.random.default_rng(3)
    m, n = 20, 200
    load = rng.integers(1, 101, size=(n, m))
    cost = 111 - load + rng.integers(-10, 11, size=(n, m))
    cap = (0.8 * load.sum(axis=0) / m).astype(int)
    problem = {"matrix": {"cost": cost.tolist(), "load": load.tolist(), "capacity": cap.tolist()}}
    p = program_with_drops(problem)
    assert applicable(p)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(problem), encoding="utf-8")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "gpuplan.cli", "solve", str(path), "--time-limit", "3", "--workers", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["status"] in ("feasible", "optimal")
    assert elapsed < 3 + 2.5


@SETTINGS
@given(one_resource_matrices(), multipliers(-40, 40))
def test_z_is_each_gpus_knapsack_optimum(m, u0):
    """`z[g]` is GPU g's knapsack optimum at the returned multipliers (the branch and bound's waste)."""
    p = program_with_drops(m)
    assert applicable(p)
    kl = knapsack_from(p, u0)
    w = p.cost_int - kl.u[:, None]
    for g in range(p.n_gpus):
        best = knapsack_by_enumeration(
            w[:, g], p.load_int[0, :, g], p.eligible[:, g], int(p.capacity_int[0, g])
        )
        assert abs(kl.z[g] - best) <= _tol(best)

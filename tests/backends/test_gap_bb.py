"""The Lagrangian branch and bound (gap_bb): exact against enumeration, ladder proofs, pins, LNS."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpuplan import native, parse_problem, solve
from gpuplan.backends import gap_bb
from gpuplan.bounds.gap import lp_relaxation
from gpuplan.bounds.knapsack import KnapsackLagrangian, knapsack_lagrangian, local_multipliers
from gpuplan.bounds.knapsack import applicable as knapsack_applicable
from gpuplan.program.gap import Program
from tests.oracles import feasible_plans
from tests.strategies import (
    SETTINGS,
    knapsack_from,
    multipliers,
    one_resource_matrices,
    program_of,
    type_d_matrix,
)

# The branch and bound is an optional C extension (setup.py): `make test` builds it; an install made
# without a C compiler has none, and these tests say so instead of failing on the import.
pytestmark = pytest.mark.skipif(not native.available(), reason=native.UNAVAILABLE)


def _usable(m: dict) -> Program:
    """The program of `m`, which the branch and bound and the knapsack Lagrangian both take."""
    p = program_of(m)
    assert gap_bb.applicable(p) and knapsack_applicable(p)
    return p


def _with_plans(m: dict) -> tuple[Program, list[tuple[np.ndarray, int]]]:
    """The program and every feasible plan; an instance without one is rejected (`assume`)."""
    p = _usable(m)
    sols = feasible_plans(p)
    assume(sols)
    return p, sols


def _assert_improving(p: Program, res: gap_bb.SearchResult, start: int) -> int:
    """Every reported plan is feasible, priced right and strictly cheaper than the one before."""
    last = start
    for _, assign, value in res.plans:
        assert p.is_feasible(assign) and p.objective_int(assign) == value < last
        last = value
    return last


@SETTINGS
@given(one_resource_matrices(), multipliers(-30, 30))
def test_branch_and_bound_equals_enumeration(m, u0):
    """With a loose target the search runs to the end and returns the optimum (any multipliers)."""
    p = _usable(m)
    sols = feasible_plans(p)
    kl = knapsack_from(p, u0)
    big = int(np.abs(p.cost_int).sum()) + 1
    r = gap_bb.branch_and_bound(p, kl, big, 10.0)
    assert r.exhausted
    if not sols:
        assert r.assign is None
        return
    opt = min(v for _, v in sols)
    assert r.assign is not None and p.is_feasible(r.assign)
    assert r.objective_int == p.objective_int(r.assign) == opt
    # a target below the optimum: nothing found, and the search says it looked everywhere
    below = gap_bb.branch_and_bound(p, kl, opt - 1, 10.0)
    assert below.assign is None and below.exhausted


@SETTINGS
@given(one_resource_matrices())
def test_ladder_proves_the_optimum(m):
    """The ladder's first plan is optimal and its proven bound equals it; no plan: no false claim."""
    p = _usable(m)
    sols = feasible_plans(p)
    res = gap_bb.search(p, knapsack_from(p), None, time.monotonic() + 10)
    if not sols:
        assert not res.plans and not res.optimal
        return
    opt = min(v for _, v in sols)
    assert res.optimal and res.plans
    assert res.plans[-1][2] == opt == res.proven_bound_int
    assert p.is_feasible(res.plans[-1][1])


@SETTINGS
@given(one_resource_matrices(), st.integers(0, 2**31 - 1))
def test_lns_never_worsens_and_bound_holds(m, seed):
    """From any feasible start the LNS only offers better feasible plans; a proven bound holds."""
    p, sols = _with_plans(m)
    start, start_val = max(sols, key=lambda s: s[1])
    opt = min(v for _, v in sols)
    res = gap_bb.search(p, knapsack_from(p), start, time.monotonic() + 0.5, seed, ladder=False)
    last = _assert_improving(p, res, start_val)
    if res.proven_bound_int is not None:
        assert res.proven_bound_int <= opt
    if res.optimal:
        assert last == opt


@SETTINGS
@given(
    one_resource_matrices(),
    multipliers(-30, 30),
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.integers(-5, 40),
)
def test_local_multipliers_bound_the_subproblem(m, u0, pinned, slack):
    """The re-optimized multipliers of a subproblem (some tasks pinned to an optimal plan's GPUs,
    the rest free) bound its optimum; "empty" (bound above the target) is never said of a
    subproblem that has a plan within the target; and the branch and bound with them is exact."""
    p, sols = _with_plans(m)
    ref, _ = min(sols, key=lambda s: s[1])
    pin = np.resize(np.array(pinned, dtype=bool), p.n_tasks)
    fixed = np.where(pin, ref, -1)
    sub_opt = min(v for a, v in sols if np.all(a[pin] == ref[pin]))
    free = np.flatnonzero(~pin)
    offset = int(p.cost_int[pin, ref[pin]].sum())
    used = np.bincount(ref[pin], weights=p.load_int[0][pin, ref[pin]], minlength=p.n_gpus)
    target = sub_opt - offset + slack - 5
    u, bound = local_multipliers(
        p.cost_int[free],
        p.load_int[0][free],
        p.eligible[free],
        p.capacity_int[0] - used.astype(np.int64),
        np.resize(np.array(u0), free.size),
        float(target),
        30,
    )
    assert bound <= sub_opt - offset + 1e-6
    full = np.resize(np.array(u0), p.n_tasks).astype(np.float64)
    full[free] = u
    r = gap_bb.branch_and_bound(p, knapsack_from(p), sub_opt + 10, 10.0, fixed=fixed, u=full)
    assert r.exhausted and r.objective_int == sub_opt
    assert r.assign is not None and np.all(r.assign[pin] == ref[pin])


def test_local_multipliers_of_an_empty_subproblem():
    """Every task pinned (the drawn GPUs held none): cost 0, no crash in the knapsacks."""
    u, bound = local_multipliers(
        np.zeros((0, 2), dtype=np.int64),
        np.zeros((0, 2), dtype=np.int64),
        np.zeros((0, 2), dtype=bool),
        np.array([3, 0]),
        np.zeros(0),
        -1.0,
        20,
    )
    assert u.size == 0 and bound == 0.0


@pytest.mark.clock
def test_lns_with_and_without_local_multipliers(monkeypatch):
    """Both LNS variants only report feasible, strictly improving plans on a type-D-like instance."""
    p, kl, first = _type_d_start(60, 8, 5, 40)
    for steps in (0, gap_bb.LNS_LOCAL_STEPS):
        monkeypatch.setattr(gap_bb, "LNS_LOCAL_STEPS", steps)
        res = gap_bb.search(p, kl, first.assign, time.monotonic() + 1.0, seed=2, ladder=False)
        _assert_improving(p, res, first.objective_int)
        assert res.lns_rounds > 0


def test_pins_are_kept_and_checked():
    m = {"matrix": {"cost": [[1, 5], [5, 1], [2, 2]], "load": [[2, 2], [2, 2], [1, 1]], "capacity": [3, 3]}}
    p = program_of(m)
    kl = knapsack_from(p)
    free = gap_bb.branch_and_bound(p, kl, 100, 5.0)
    assert free.objective_int == p.objective_int(np.array([0, 1, 0]))
    pinned = gap_bb.branch_and_bound(p, kl, 100, 5.0, fixed=np.array([1, -1, -1]))
    assert pinned.assign is not None and pinned.assign[0] == 1 and p.is_feasible(pinned.assign)
    with pytest.raises(ValueError, match="pinned"):
        gap_bb.branch_and_bound(p, kl, 100, 5.0, fixed=np.array([-1, -1, 5]))


def _type_d_start(
    t: int, g: int, seed: int, max_load: int
) -> tuple[Program, KnapsackLagrangian, gap_bb.BBResult]:
    """A type-D-like program, its knapsack Lagrangian from the LP duals and a first plan."""
    p = program_of(type_d_matrix(t, g, seed, max_load))
    lp = lp_relaxation(p, time.monotonic() + 5)
    assert lp is not None and lp.u is not None
    kl = knapsack_lagrangian(p, lp.u, None, time.monotonic() + 5)
    first = gap_bb.branch_and_bound(p, kl, int(p.cost_int.max(axis=1).sum()), 5.0, node_limit=2000)
    assert first.assign is not None and first.objective_int is not None
    return p, kl, first


def test_node_limit_stops_without_claiming_exhaustion():
    p = program_of(type_d_matrix(40, 6, 3, 25))
    kl = knapsack_from(p)
    r = gap_bb.branch_and_bound(p, kl, int(p.cost_int.sum()), 10.0, node_limit=32)
    assert not r.exhausted and r.nodes <= 64


def test_optional_tasks_are_not_handled():
    p = program_of({"matrix": {"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1, 1]}})
    assert gap_bb.applicable(p)
    q = p.replace(optional=np.array([True]), penalty=np.array([3.0]), penalty_int=np.array([3]))
    assert not gap_bb.applicable(q)


@pytest.mark.clock
def test_portfolio_proves_a_tight_instance_by_the_ladder():
    """A type-D-like 5x40 instance: the plan is optimal, proven by the ladder, and says so."""
    plan = solve(parse_problem(type_d_matrix(40, 5, 11, 100)), time_limit_s=20, workers=2)
    assert plan.status.value == "optimal"
    assert plan.stats["bb_optimal"] is True
    assert plan.bound == pytest.approx(plan.objective)


@pytest.mark.clock
def test_portfolio_routes_mid_size_programs_to_the_branch_and_bound():
    """A 20 x 300 single-resource program (6,000 pairs: above the exact-phase limit, within
    `BB_PAIRS`) takes the knapsack Lagrangian and the branch and bound; the plan is verified."""
    from gpuplan.strategy import portfolio

    m = type_d_matrix(300, 20, 7, 20)
    assert portfolio.EXACT_PAIRS < 300 * 20 <= portfolio.BB_PAIRS
    plan = solve(parse_problem(m), time_limit_s=4, workers=2)
    assert plan.status.value in ("optimal", "feasible")
    assert "bb_nodes" in plan.stats and "knap_iterations" in plan.stats
    assert plan.bound is not None and plan.bound <= plan.objective


@SETTINGS
@given(one_resource_matrices(), st.integers(0, 3))
def test_discrepancy_limit_is_never_called_exhaustive_when_it_cuts(m, disc):
    """A limited-discrepancy search finds no plan cheaper than the optimum, and claims exhaustion
    only when nothing was cut (then it agrees with the complete search)."""
    p = _usable(m)
    kl = knapsack_from(p)
    big = int(np.abs(p.cost_int).sum()) + 1
    full = gap_bb.branch_and_bound(p, kl, big, 10.0)
    lds = gap_bb.branch_and_bound(p, kl, big, 10.0, max_discrepancy=disc)
    if lds.assign is not None:
        assert p.is_feasible(lds.assign) and full.objective_int is not None
        assert lds.objective_int is not None and lds.objective_int >= full.objective_int
    if lds.exhausted:
        assert lds.objective_int == full.objective_int


@pytest.mark.clock
def test_lns_trajectories_restart_from_the_start_plan_and_never_report_worse():
    """Once its trajectory stops improving a worker begins again from the start plan; what the
    search reports still only ever improves on the start."""
    p, kl, first = _type_d_start(80, 8, 5, 100)
    res = gap_bb.search(p, kl, first.assign, time.monotonic() + 2.0, seed=1, ladder=False)
    assert res.restarts >= 1 or res.optimal  # (a proof ends the search before any restart)
    _assert_improving(p, res, first.objective_int)

"""Lower bounds, reduced-cost fixing and the local search, against brute force on tiny instances."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import assume, given

from gpuplan.bounds.gap import fixable, lagrangian_bound, lp_relaxation, subgradient
from gpuplan.heuristics.local import LocalSearch
from gpuplan.program.gap import DROPPED
from gpuplan.program.solution import cost_bound_to_user
from tests.oracles import best_assignment, matrix_brute_force
from tests.strategies import SETTINGS, matrices, multipliers, program_of


@SETTINGS
@given(matrices(homeless=False), multipliers(0, 20, size=6))
def test_lagrangian_bound_never_exceeds_the_optimum(m, lams):
    """L(λ) is below the brute-force optimum for any λ >= 0, and so are subgradient and LP bounds."""
    opt = matrix_brute_force(m)
    assume(opt is not None)
    program = program_of(m)
    lam = np.resize(np.array(lams), program.capacity.shape)
    assert cost_bound_to_user(program, lagrangian_bound(program, lam)) <= opt + 1e-6
    _, sg = subgradient(program, None, time.monotonic() + 2)
    assert cost_bound_to_user(program, sg) <= opt + 1e-6
    lp = lp_relaxation(program, time.monotonic() + 5)
    assert lp is not None
    assert cost_bound_to_user(program, lp.bound_int) <= opt + 1e-6
    if lp.complete:  # at the LP optimum the Lagrangian of its duals is the LP value
        assert abs(lp.bound_int - lp.lp_value) <= 1e-6 * max(1.0, abs(lp.lp_value))


@SETTINGS
@given(matrices(homeless=False))
def test_fixing_keeps_every_optimal_pair(m):
    """Reduced-cost fixing at the optimal value never removes a pair of an optimal assignment."""
    program = program_of(m)
    best = best_assignment(program)
    assume(best is not None)
    lp = lp_relaxation(program, time.monotonic() + 5)
    assert lp is not None  # a feasible program has a feasible relaxation
    fixed = fixable(program, lp, float(program.objective_int(best)))
    assert not fixed[np.arange(program.n_tasks), best].any()


@SETTINGS
@given(matrices(homeless=False))
def test_local_search_returns_a_feasible_plan_when_it_can(m):
    """From an empty start, the local search places every task feasibly on instances with room to spare."""
    program = program_of(m)
    assume(best_assignment(program) is not None)
    # give every GPU twice the capacity: the penalized search must then reach feasibility
    roomy = program.replace(capacity_int=program.capacity_int * 2 + 1)
    start = np.full(program.n_tasks, DROPPED, dtype=np.int64)
    out = LocalSearch(roomy, seed=1).run(start, time.monotonic() + 5)
    assert roomy.is_feasible(out)

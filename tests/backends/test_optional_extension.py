"""The compiled core (`gpuplan.native._gapbb`) is optional: without it the portfolio runs its other
phases and the plan says that the branch and bound did not run; the knapsack subgradient falls back
to numpy with the same results."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from gpuplan import native, parse_problem, solve, verify
from gpuplan.backends import gap_bb
from gpuplan.bounds import knapsack as gap_knapsack
from tests.strategies import program_with_drops, type_d_matrix

compiled = pytest.mark.skipif(not native.available(), reason="the C extension is not built here")


@pytest.fixture
def without_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the install had no C compiler: the extension module is missing."""
    monkeypatch.setattr(native, "_gapbb", None)
    assert not native.available()


def test_portfolio_without_the_extension_still_plans_and_says_so(without_extension: None) -> None:
    """A type-D-like 5 x 30 program (one the branch and bound takes when built): CP-SAT and SCIP
    give a verified plan, and the plan's message and stats say that the branch and bound did not
    run."""
    problem = parse_problem(type_d_matrix(30, 5, 3, 100))
    plan = solve(problem, time_limit_s=4, workers=2)
    assert plan.status.value in ("optimal", "feasible")
    verify(plan, problem)
    assert len(plan.assignments) == 30
    assert plan.bound is not None and plan.bound <= plan.objective
    assert plan.message == native.UNAVAILABLE
    assert plan.stats["bb"] == "unavailable (C extension not built)"
    assert plan.stats["knap_dp"] == "numpy"
    assert not any(k.startswith("bb_") for k in plan.stats)


def test_no_note_where_the_branch_and_bound_would_not_run(without_extension: None) -> None:
    """A program with two resources never takes the branch and bound: nothing to report."""
    ones = [[1, 1], [1, 1]]
    problem = parse_problem({"matrix": {"cost": [[1, 2], [2, 1]], "load": [ones, ones], "capacity": ones}})
    plan = solve(problem, time_limit_s=3, workers=1)
    assert plan.status.value == "optimal"
    assert plan.message == ""
    assert "bb" not in plan.stats


def test_branch_and_bound_without_the_extension_names_it(without_extension: None) -> None:
    p = program_with_drops({"matrix": {"cost": [[1, 2]], "load": [[1, 1]], "capacity": [1, 1]}})
    kl = gap_knapsack.knapsack_lagrangian(p, np.zeros(1), None, time.monotonic() + 2, iterations=5)
    with pytest.raises(ImportError, match=re.escape(native.UNAVAILABLE)):
        gap_bb.branch_and_bound(p, kl, 10, 1.0)


@compiled
def test_portfolio_with_the_extension_takes_the_branch_and_bound() -> None:
    plan = solve(parse_problem(type_d_matrix(30, 5, 3, 100)), time_limit_s=4, workers=2)
    assert plan.status.value in ("optimal", "feasible")
    assert "bb_nodes" in plan.stats and plan.stats["knap_dp"] == "compiled"
    assert native.UNAVAILABLE not in plan.message and "bb" not in plan.stats


@compiled
@pytest.mark.parametrize("seed", range(6))
def test_numpy_knapsacks_match_the_compiled_ones(seed: int) -> None:
    """Same optima and the same choices (ties included): the subgradient does not depend on the
    install."""
    rng = np.random.default_rng(seed)
    t, g = int(rng.integers(1, 30)), int(rng.integers(1, 6))
    w = rng.integers(-20, 10, size=(t, g)).astype(np.float64)  # integers: many ties
    load = rng.integers(0, 12, size=(t, g))
    eligible = rng.random((t, g)) < 0.8
    cap = rng.integers(0, 40, size=g)
    z_c, x_c = gap_knapsack.knapsacks(w, load, eligible, cap)
    z_n, x_n = gap_knapsack.knapsacks_numpy(w, load, eligible, cap)
    assert np.array_equal(z_c, z_n) and np.array_equal(x_c, x_n)


@compiled
def test_knapsack_lagrangian_is_the_same_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    p = program_with_drops(type_d_matrix(30, 5, 4, 100))
    u0 = np.full(p.n_tasks, float(p.cost_int.mean()))
    a = gap_knapsack.knapsack_lagrangian(p, u0, None, time.monotonic() + 5, iterations=30)
    monkeypatch.setattr(native, "_gapbb", None)
    b = gap_knapsack.knapsack_lagrangian(p, u0, None, time.monotonic() + 5, iterations=30)
    assert a.iterations == b.iterations and a.bound_int == b.bound_int
    assert np.array_equal(a.u, b.u)


def test_the_extension_is_built_wherever_a_c_compiler_is() -> None:
    """Skipping the branch-and-bound tests is for installs without a compiler only: where `cc` exists
    (as on CI), `make test` must have built the extension, so a broken build cannot hide as skips."""
    import shutil

    if shutil.which("cc") or shutil.which("gcc"):
        assert native.available(), native.UNAVAILABLE
        assert native.wrapper() is not None, native.WRAPPER_UNAVAILABLE  # the executor's task wrapper

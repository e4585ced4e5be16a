"""The SCIP portfolio member: feasible plans, proven bounds, its deadline and its stop request."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given

from gpuplan.backends.scip import ScipRun, scip_available
from gpuplan.program.solution import cost_bound_to_user
from tests.oracles import best_assignment
from tests.strategies import SETTINGS, matrices, program_of

pytestmark = pytest.mark.skipif(not scip_available(), reason="OR-Tools built without SCIP")


@SETTINGS
@given(matrices(homeless=False))
def test_scip_plan_is_feasible_and_its_bound_below_the_optimum(m):
    """On tiny programs SCIP's plan is feasible, optimal when it says so, and its bound never too high."""
    program = program_of(m)
    best = best_assignment(program)
    run = ScipRun(program, time.monotonic() + 5)
    run.start()
    run.join()
    assert not run.error
    if best is None:
        assert run.assign is None
        return
    opt = program.objective_int(best)
    assert run.assign is not None and program.is_feasible(run.assign)
    if run.optimal:
        assert program.objective_int(run.assign) == opt
    if run.bound_int is not None:
        assert cost_bound_to_user(program, run.bound_int) <= program.objective(best) + 1e-6


def _gap_program(m: int, n: int, seed: int):
    """A random tight type-D-like GAP instance (hard enough that SCIP does not finish at once)."""
    rng = np.random.default_rng(seed)
    load = rng.integers(1, 101, size=(n, m))
    cost = 111 - load + rng.integers(-10, 11, size=(n, m))
    cap = (0.8 * load.sum(axis=0) / m).astype(int)
    data = {"matrix": {"cost": cost.tolist(), "load": load.tolist(), "capacity": cap.tolist()}}
    return program_of(data)


@pytest.mark.clock
def test_scip_honours_its_deadline_and_stop():
    """A hard program: SCIP returns by its deadline, and promptly after `stop`."""
    program = _gap_program(10, 150, seed=3)
    started = time.monotonic()
    run = ScipRun(program, started + 1.5)
    run.start()
    run.join(10)
    assert time.monotonic() - started < 1.5 * 1.1 + 1.0
    assert run.assign is None or program.is_feasible(run.assign)

    run = ScipRun(program, time.monotonic() + 30)
    run.start()
    time.sleep(1.0)
    asked = time.monotonic()
    run.stop()
    run.join(10)
    assert not run.error
    assert time.monotonic() - asked < 2.0


def test_stop_before_start_skips_the_solve():
    """A run stopped before SCIP starts returns at once with nothing."""
    program = _gap_program(5, 40, seed=1)
    run = ScipRun(program, time.monotonic() + 30)
    run.stop()
    run.start()
    run.join(10)
    assert run.assign is None and run.bound_int is None

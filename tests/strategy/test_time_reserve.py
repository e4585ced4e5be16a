"""The searches leave time for the priority repair, decoding and verification; a repair the clock
cuts leaves a valid plan that says so, and the verifier holds it to saying so."""

from __future__ import annotations

import time

import numpy as np
import pytest

import gpuplan
from gpuplan.heuristics.fleet_greedy import honour_priorities_until
from gpuplan.program.decode_fleet import decode_fleet
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.verify import VerificationError, verify
from gpuplan.status import Status
from gpuplan.strategy.fleet import REPAIR_CUT, RESERVE_SHARE, reserves
from tests.heuristics.test_honour_priorities import GANG_BLOCKED


def test_reserves_follow_the_build_and_stay_within_their_share() -> None:
    finish, repair = reserves(60.0, 2.0)
    assert finish > 0 and repair > 0 and finish + repair < RESERVE_SHARE * 60.0
    assert reserves(60.0, 4.0) == pytest.approx((2 * finish, 2 * repair))
    finish, repair = reserves(10.0, 100.0)  # a build this slow: the reserves are capped
    assert finish + repair == pytest.approx(RESERVE_SHARE * 10.0)
    assert reserves(10.0, 0.0) == (0.0, 0.0)


def _plan(c, assign: np.ndarray, stats: dict, message: str) -> gpuplan.Plan:
    return decode_fleet(
        c,
        assign,
        Status.FEASIBLE,
        None,
        solver="greedy",
        phases=["greedy"],
        requested="greedy",
        reason="",
        started=time.monotonic(),
        warm=None,
        incumbents=[],
        stats=stats,
        message=message,
    )


def test_a_repair_cut_by_the_clock_leaves_a_valid_plan_that_says_so() -> None:
    c = compile_fleet(gpuplan.Problem.model_validate(GANG_BLOCKED))
    p = c.program
    assign = p.empty_assign()
    assign[0, 0] = 0  # 'small' on n0's first GPU; the gang left out though it could go there
    cut, placed, finished = honour_priorities_until(p, assign, time.monotonic() - 1.0)
    assert not finished and placed == 0 and np.array_equal(cut, assign)
    assert p.violations(cut) == []
    verify(_plan(c, cut, {"priority_repair_cut": True}, REPAIR_CUT), c.source)  # no dominance claimed
    with pytest.raises(VerificationError, match="must say so"):
        verify(_plan(c, cut, {"priority_repair_cut": True}, ""), c.source)
    with pytest.raises(VerificationError, match="left out though it fits"):
        verify(_plan(c, cut, {}, ""), c.source)
    done, placed, finished = honour_priorities_until(p, assign, time.monotonic() + 60.0)
    assert finished and placed == 1
    verify(_plan(c, done, {}, ""), c.source)

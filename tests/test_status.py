"""Status semantics: `optimal` exactly when the proven relative gap is within the tolerance."""

from __future__ import annotations

import pytest

from gpuplan.status import OPTIMALITY_TOLERANCE, Status, relative_gap, settle


def test_a_gap_within_the_tolerance_is_optimal() -> None:
    """A feasible result whose bound is within 1e-6 of its objective is reported optimal."""
    status, bound, gap = settle(Status.FEASIBLE, 100.0, 100.0 - 2e-6)
    assert status is Status.OPTIMAL and bound == pytest.approx(100.0 - 2e-6)
    assert 0 < gap <= OPTIMALITY_TOLERANCE


def test_an_optimality_claim_is_checked_against_the_bound() -> None:
    """A backend's 'optimal' with a bound 0.1% below stays feasible, with its honest gap."""
    status, _, gap = settle(Status.OPTIMAL, 100.0, 99.9)
    assert status is Status.FEASIBLE and gap == pytest.approx(1e-3)
    assert settle(Status.OPTIMAL, 100.0, None) == (Status.FEASIBLE, None, None)


def test_bound_is_capped_at_the_objective_and_gap_is_zero_then() -> None:
    """A bound above the objective (float noise) is lowered to it; the gap is then exactly 0."""
    assert settle(Status.FEASIBLE, 5.0, 5.0 + 1e-12) == (Status.OPTIMAL, 5.0, 0.0)
    assert relative_gap(0.0, -1.0) == pytest.approx(1e9)


def test_no_solution_has_no_gap() -> None:
    """Infeasible and unknown results keep their status and carry no gap."""
    assert settle(Status.INFEASIBLE, None, 3.0) == (Status.INFEASIBLE, 3.0, None)
    assert settle(Status.UNKNOWN, None, None)[2] is None

"""Outcome of a solve, and the one rule that turns an objective and a proven bound into it.

Kept apart from the pydantic models so that backends, which see only compiled programs, can use it.
"""

from __future__ import annotations

from enum import StrEnum

#: A plan is `optimal` when its relative gap to the proven bound is at most this, as MIP solvers'
#: default relative gap tolerance (objective and bound are floats, and costs may have been scaled).
OPTIMALITY_TOLERANCE = 1e-6


class Status(StrEnum):
    """Outcome of a solve."""

    OPTIMAL = "optimal"
    """A solution whose relative gap to a proven bound is within OPTIMALITY_TOLERANCE."""
    FEASIBLE = "feasible"
    """Stopped with a solution whose optimality is not proven."""
    INFEASIBLE = "infeasible"
    """Proven that no solution exists."""
    UNKNOWN = "unknown"
    """No solution found within the limit, and no proof that none exists."""
    INVALID = "invalid"
    """The input was rejected."""

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


def relative_gap(objective: float, bound: float) -> float:
    """|objective - bound| / max(|objective|, 1e-9): 0 when the bound reaches the objective."""
    if bound >= objective:
        return 0.0
    return (objective - bound) / max(abs(objective), 1e-9)


def settle(
    status: Status, objective: float | None, bound: float | None
) -> tuple[Status, float | None, float | None]:
    """(status, bound, gap) of a result: the bound capped at the objective, `optimal` exactly when
    the gap is within OPTIMALITY_TOLERANCE (a backend's own optimality claim is checked, not
    trusted: without a bound to back it the plan is `feasible`)."""
    if not status.has_solution or objective is None:
        return status, bound, None
    if bound is None:
        return Status.FEASIBLE, None, None
    bound = min(bound, objective)
    gap = relative_gap(objective, bound)
    return (Status.OPTIMAL if gap <= OPTIMALITY_TOLERANCE else Status.FEASIBLE), bound, gap


__all__ = ["OPTIMALITY_TOLERANCE", "Status", "relative_gap", "settle"]

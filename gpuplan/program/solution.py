"""The solver interface: a Program in, a RawSolution out, statuses mapped onto one set."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from gpuplan.program.gap import DROPPED, Program
from gpuplan.status import Status


@dataclass
class RawSolution:
    """A solver's answer in index space. `objective` and `bound` are in the user's units."""

    assign: np.ndarray  # int64 [T]; DROPPED for unplaced tasks
    status: Status
    objective: float | None
    bound: float | None = None
    incumbents: list[tuple[float, float]] = field(default_factory=list)
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def empty(cls, program: Program, status: Status, message: str = "") -> RawSolution:
        return cls(np.full(program.n_tasks, DROPPED, dtype=np.int64), status, None, message=message)


@dataclass(frozen=True)
class SolveParams:
    """Settings every backend honors. `deadline` is a time.monotonic() instant."""

    deadline: float
    workers: int = 1
    seed: int = 0
    hint: np.ndarray | None = None

    def remaining(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())


class Solver(Protocol):
    """A backend: maps a Program to a RawSolution within the deadline."""

    name: str

    def solve(self, program: Program, params: SolveParams) -> RawSolution: ...


def cost_bound_to_user(program: Program, bound_int: float) -> float:
    """A bound in integer cost units -> user units, lowered by the cost rounding when inexact."""
    bound = bound_int / program.cost_scale
    if not program.costs_exact:
        bound -= 0.5 * program.n_tasks / program.cost_scale
    return bound


def int_bound_to_user(program: Program, bound_int: float) -> float | None:
    """Turn a bound on the integer program's objective into a bound in user units.

    None when the integer program need not contain every user-feasible plan (loads rounded beyond
    the capacity tolerance): its bound then need not hold for the user's problem.
    """
    return cost_bound_to_user(program, bound_int) if program.loads_exact else None


def proven_status(program: Program, objective: float) -> Status:
    """OPTIMAL for an optimum of the integer program, unless cost rounding could matter.

    With inexact cost scaling the integer optimum is within n_tasks / scale of the true one; it
    is reported optimal only when that slack is below 1e-9 of the objective. Loads rounded within
    the capacity tolerance keep the integer program a relaxation, so exact costs suffice.
    """
    if not program.loads_exact:
        return Status.FEASIBLE
    if program.costs_exact:
        return Status.OPTIMAL
    slack = 0.5 * program.n_tasks / program.cost_scale
    return Status.OPTIMAL if slack <= 1e-9 * max(1.0, abs(objective)) else Status.FEASIBLE

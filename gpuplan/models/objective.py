"""What the solver minimizes, and how long it may try."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpuplan.models.base import Spec

SolverName = Literal["auto", "greedy", "cpsat", "milp"]


class Objective(Spec):
    """The objective. Priorities always come first; then the chosen criterion."""

    kind: Literal["cost"] = Field(
        default="cost",
        description="'cost': total GPU-hours x price of placed tasks.",
    )


class SolveOptions(Spec):
    """Solver settings stored with a problem; the CLI and API arguments override them."""

    solver: SolverName = Field(default="auto", description="Backend: auto, greedy, cpsat or milp.")
    time_limit_s: float = Field(default=10.0, gt=0, description="Wall-clock limit for the whole solve.")
    workers: int | None = Field(default=None, ge=1, description="Solver threads; None means all cores.")
    seed: int = Field(default=0, ge=0, description="Random seed, for reproducible runs.")

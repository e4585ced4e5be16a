"""Solver backends. Each sees only a Program and returns a RawSolution; imports are lazy."""

from __future__ import annotations

from gpuplan.errors import InputError
from gpuplan.program.solution import RawSolution, SolveParams, Solver

BACKENDS = ("greedy", "cpsat", "milp")


def get_solver(name: str) -> Solver:
    """The backend called `name` (greedy, cpsat or milp)."""
    if name == "greedy":
        from gpuplan.heuristics.greedy import GreedySolver

        return GreedySolver()
    if name == "cpsat":
        from gpuplan.backends.cpsat import CpSatSolver

        return CpSatSolver()
    if name == "milp":
        from gpuplan.backends.milp import MilpSolver

        return MilpSolver()
    raise InputError("solver", f"unknown backend {name!r} (choose auto, {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "RawSolution", "SolveParams", "Solver", "get_solver"]

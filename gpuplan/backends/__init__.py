"""Solver backends, each declaring which programs it accepts and whether it can run here.

A backend sees only a compiled program (never the pydantic specs) and returns its answer in index
space. `REGISTRY` lists them with two checks each, as CVXPY's solver interfaces do: `accepts(program)`
('' when it takes that program, else why not) and `available()` ('' when it can run on this
machine, else why not). The strategies consult it; a backend asked for by name that does not
accept the program, or cannot run, is the user's input error (`require`), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpuplan.errors import InputError
from gpuplan.program.fleet import FleetProgram
from gpuplan.program.gap import Program
from gpuplan.program.solution import RawSolution, SolveParams, Solver

#: The names a user may ask for (`auto` lets the strategy choose among those that accept).
BACKENDS = ("greedy", "cpsat", "milp")


@dataclass(frozen=True)
class Backend:
    """A backend's name, what it is, and its two declarations."""

    name: str
    summary: str
    accepts: Callable[[Program | FleetProgram], str]
    available: Callable[[], str]


def _any(program: Program | FleetProgram) -> str:
    return ""


def _gap_only(program: Program | FleetProgram) -> str:
    if isinstance(program, Program):
        return ""
    return (
        "it accepts GAP programs only, and this problem's is not (gangs, node resources, spread, data,"
        " migration, CPU-only tasks or a criterion other than cost, or too large for dense arrays)"
    )


def _bb_accepts(program: Program | FleetProgram) -> str:
    from gpuplan.backends.gap_bb import applicable

    if not isinstance(program, Program):
        return _gap_only(program)
    return "" if applicable(program) else "it needs one resource, exact loads and every task required"


def _native() -> str:
    from gpuplan import native

    return "" if native.available() else native.UNAVAILABLE


def _scip() -> str:
    from gpuplan.backends.scip import scip_available

    return "" if scip_available() else "this OR-Tools build ships no SCIP"


def _always() -> str:
    return ""


REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("greedy", "priority first, cheapest GPU with room (GAP and fleet)", _any, _always),
        Backend("cpsat", "OR-Tools CP-SAT on the exact model, hinted (GAP and fleet)", _any, _always),
        Backend("milp", "PuLP with CBC, wall-clock enforced by gpuplan", _gap_only, _always),
        Backend("scip", "OR-Tools SCIP beside CP-SAT in the portfolio", _gap_only, _scip),
        Backend("bb", "Lagrangian branch and bound in C (single-resource GAP)", _bb_accepts, _native),
    )
}


def require(name: str, program: Program | FleetProgram) -> None:
    """Raise InputError (field `solver`) unless backend `name` accepts `program` and can run here."""
    backend = REGISTRY.get(name)
    if backend is None or name not in BACKENDS:
        raise InputError("solver", f"unknown backend {name!r} (choose auto, {', '.join(BACKENDS)})")
    why = backend.accepts(program) or backend.available()
    if why:
        raise InputError("solver", f"{name!r} cannot take this program: {why}; use auto, cpsat or greedy")


def get_solver(name: str) -> Solver:
    """The GAP backend called `name` (greedy, cpsat or milp)."""
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


__all__ = ["BACKENDS", "REGISTRY", "Backend", "RawSolution", "SolveParams", "Solver", "get_solver", "require"]

"""Compile, solve, decode and verify: the way from a Problem to a verified Plan."""

from gpuplan.optimizer.compile import Compiled, compile_problem
from gpuplan.optimizer.decode import decode
from gpuplan.optimizer.program import DROPPED, Program
from gpuplan.optimizer.solve import parse_problem, solve, solve_compiled
from gpuplan.optimizer.verify import VerificationError, verify

__all__ = [
    "DROPPED",
    "Compiled",
    "Program",
    "VerificationError",
    "compile_problem",
    "decode",
    "parse_problem",
    "solve",
    "solve_compiled",
    "verify",
]

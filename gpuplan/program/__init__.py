"""The compiled program and the only ways into and out of it: build, decode, verify.

`build` makes the one program of a Problem (`compile_fleet`) or of the matrix form
(`compile_matrix`); `compile_problem` is its GAP view (dense [tasks, GPUs] arrays) when it is a GAP;
`decode_fleet` turns a solution in index space back into a Plan; `verify` checks a Plan against the
user's own input. The drop penalties that make
priorities lexicographic are built once, in `priorities`.
"""

from gpuplan.program.build import build, compile_matrix
from gpuplan.program.compile import Compiled
from gpuplan.program.fleet import NONE, FleetCompiled, FleetProgram, compile_fleet
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.gap_view import compile_problem, gap_view
from gpuplan.program.solution import RawSolution, SolveParams
from gpuplan.program.verify import verify

__all__ = [
    "DROPPED",
    "NONE",
    "Compiled",
    "FleetCompiled",
    "FleetProgram",
    "Program",
    "RawSolution",
    "SolveParams",
    "build",
    "compile_fleet",
    "compile_matrix",
    "compile_problem",
    "gap_view",
    "verify",
]

"""The compiled program and the only ways into and out of it: build, decode, verify.

`compile_problem` (the GAP core: dense [tasks, GPUs] arrays) and `compile_fleet` (the full model,
by GPU class) build from the specs; `decode` / `decode_fleet` turn a solution in index space back
into a Plan; `verify` checks a Plan against the user's own input. The drop penalties that make
priorities lexicographic are built once, in `priorities`.
"""

from gpuplan.program.compile import Compiled, compile_matrix
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
    "compile_fleet",
    "compile_matrix",
    "compile_problem",
    "gap_view",
    "verify",
]

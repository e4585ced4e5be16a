"""gpuplan: decide which GPU runs which task, with a verified plan, a proven bound and its gap."""

import logging

from gpuplan.api import parse_problem, solve
from gpuplan.errors import GpuplanError, InputError, VerificationError
from gpuplan.models import (
    GPU,
    Assignment,
    GPUType,
    Matrix,
    MatrixProblem,
    Node,
    Objective,
    Plan,
    Problem,
    SolveOptions,
    Status,
    Task,
    Unassigned,
)
from gpuplan.program import Compiled, Program, compile_problem, verify

logging.getLogger("gpuplan").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "GPU",
    "Assignment",
    "Compiled",
    "GPUType",
    "GpuplanError",
    "InputError",
    "Matrix",
    "MatrixProblem",
    "Node",
    "Objective",
    "Plan",
    "Problem",
    "Program",
    "SolveOptions",
    "Status",
    "Task",
    "Unassigned",
    "VerificationError",
    "__version__",
    "compile_problem",
    "parse_problem",
    "solve",
    "verify",
]

"""Input specs (fleet, tasks, problem, matrix form) and the plan that comes back."""

from gpuplan.models.fleet import GPU, GPUType, Node
from gpuplan.models.matrix import Matrix, MatrixProblem
from gpuplan.models.objective import Objective, SolveOptions
from gpuplan.models.plan import (
    Assignment,
    CalibrationUse,
    GPUUsage,
    Incumbent,
    Plan,
    Scaling,
    Status,
    Unassigned,
    ValueSource,
)
from gpuplan.models.problem import Problem
from gpuplan.models.tasks import Task

__all__ = [
    "GPU",
    "Assignment",
    "CalibrationUse",
    "GPUType",
    "GPUUsage",
    "Incumbent",
    "Matrix",
    "MatrixProblem",
    "Node",
    "Objective",
    "Plan",
    "Problem",
    "Scaling",
    "SolveOptions",
    "Status",
    "Task",
    "Unassigned",
    "ValueSource",
]

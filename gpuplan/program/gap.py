"""The compiled program: read-only numpy arrays, the math and nothing else (no names)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Marker in an assignment vector for a task left unplaced.
DROPPED = -1


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Program:
    """min Σ cost·x + Σ penalty·dropped  s.t. one GPU per placed task, load ≤ capacity.

    Float arrays carry the user's units; the `*_int` twins are the integer program CP-SAT sees
    (value_int = round(value · scale); when a resource cannot be scaled exactly, capacities get a
    relative tolerance of 1e-9, see `compile`).
    """

    cost: np.ndarray  # float64 [T, G]; 0 where not eligible
    eligible: np.ndarray  # bool [T, G]
    load: np.ndarray  # float64 [R, T, G]
    capacity: np.ndarray  # float64 [R, G]
    optional: np.ndarray  # bool [T]
    priority: np.ndarray  # int64 [T]
    penalty: np.ndarray  # float64 [T]; 0 for required tasks
    cost_int: np.ndarray  # int64 [T, G]
    penalty_int: np.ndarray  # int64 [T]
    load_int: np.ndarray  # int64 [R, T, G]
    capacity_int: np.ndarray  # int64 [R, G]
    cost_scale: float
    load_scale: np.ndarray  # float64 [R]
    resource_names: tuple[str, ...]
    scaling_exact: bool  # costs and loads both exact
    loads_exact: bool = True  # integer program contains every user-feasible plan: its bounds hold
    costs_exact: bool = True  # every cost is an integer after scaling: integer objectives are exact

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                object.__setattr__(self, f.name, _frozen(value))
        t, g = self.cost.shape
        r = len(self.resource_names)
        shapes = {
            "eligible": (t, g),
            "load": (r, t, g),
            "capacity": (r, g),
            "optional": (t,),
            "priority": (t,),
            "penalty": (t,),
            "cost_int": (t, g),
            "penalty_int": (t,),
            "load_int": (r, t, g),
            "capacity_int": (r, g),
            "load_scale": (r,),
        }
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"Program.{name}: shape {getattr(self, name).shape}, expected {shape}")

    @property
    def n_tasks(self) -> int:
        return int(self.cost.shape[0])

    @property
    def n_gpus(self) -> int:
        return int(self.cost.shape[1])

    @property
    def n_resources(self) -> int:
        return len(self.resource_names)

    def replace(self, **changes: Any) -> Program:
        """A copy with some fields changed (the original stays untouched)."""
        return dataclasses.replace(self, **changes)

    # --- evaluation, shared by every solver ------------------------------------------------
    def objective(self, assign: np.ndarray) -> float:
        """Objective in user units of an assignment vector (DROPPED for unplaced tasks)."""
        placed = assign >= 0
        idx = np.nonzero(placed)[0]
        return float(self.cost[idx, assign[idx]].sum() + self.penalty[~placed].sum())

    def objective_int(self, assign: np.ndarray) -> int:
        """Objective of the integer program."""
        placed = assign >= 0
        idx = np.nonzero(placed)[0]
        return int(self.cost_int[idx, assign[idx]].sum() + self.penalty_int[~placed].sum())

    def used_int(self, assign: np.ndarray) -> np.ndarray:
        """Integer load per resource and GPU, int64 [R, G]."""
        used = np.zeros((self.n_resources, self.n_gpus), dtype=np.int64)
        idx = np.nonzero(assign >= 0)[0]
        if idx.size:
            for r in range(self.n_resources):
                np.add.at(used[r], assign[idx], self.load_int[r, idx, assign[idx]])
        return used

    def is_feasible(self, assign: np.ndarray) -> bool:
        """Eligibility, required tasks placed and integer capacities held."""
        if assign.shape != (self.n_tasks,):
            return False
        placed = assign >= 0
        if np.any(~placed & ~self.optional):
            return False
        idx = np.nonzero(placed)[0]
        if np.any(assign[idx] >= self.n_gpus) or not np.all(self.eligible[idx, assign[idx]]):
            return False
        return bool(np.all(self.used_int(assign) <= self.capacity_int))

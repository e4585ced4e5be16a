"""The matrix form: a generalized assignment program handed over directly (DESIGN contract)."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from gpuplan.models.base import Spec

Number = float
Row = list[Number | None]


def _depth(value: object) -> int:
    """Nesting of lists along the first entries: [] is 1 and [[]] is 2 (an empty row is still a row)."""
    d = 0
    while isinstance(value, list):
        d += 1
        if not value:
            break
        value = value[0]
    return d


class Matrix(Spec):
    """`cost[t][g]` (null = task t may not run on GPU g), `load` (tasks x GPUs, or resources x
    tasks x GPUs), `capacity` (GPUs, or resources x GPUs). Every task goes to exactly one GPU."""

    cost: list[Row] = Field(min_length=1, description="Tasks x GPUs cost; null forbids the pair.")
    load: list[Row] | list[list[Row]] = Field(
        description="Tasks x GPUs, or resources x tasks x GPUs; load of task t on GPU g."
    )
    capacity: list[Number] | list[list[Number]] = Field(
        description="GPUs, or resources x GPUs; capacity of each GPU."
    )
    task_ids: list[str] | None = Field(default=None, description="Task ids; default '0', '1', ...")
    gpu_ids: list[str] | None = Field(default=None, description="GPU ids; default '0', '1', ...")

    @property
    def n_tasks(self) -> int:
        return len(self.cost)

    @property
    def n_gpus(self) -> int:
        return len(self.cost[0])

    def loads(self) -> list[list[Row]]:
        """Load as resources x tasks x GPUs."""
        return [self.load] if _depth(self.load) == 2 else self.load  # type: ignore[list-item,return-value]

    def capacities(self) -> list[list[Number]]:
        """Capacity as resources x GPUs."""
        return [self.capacity] if _depth(self.capacity) == 1 else self.capacity  # type: ignore[list-item,return-value]

    @model_validator(mode="after")
    def _check_shape(self) -> Matrix:
        n_t, n_g = self.n_tasks, self.n_gpus
        if n_g == 0:
            raise ValueError("matrix.cost[0]: a task row needs at least one GPU")
        for t, row in enumerate(self.cost):
            if len(row) != n_g:
                raise ValueError(f"matrix.cost[{t}]: ragged row of {len(row)} entries, expected {n_g}")
            if all(v is None for v in row):
                pass  # a task with no allowed GPU: infeasible, reported as such, not invalid input
        loads, caps = self.loads(), self.capacities()
        if len(loads) != len(caps):
            raise ValueError(f"matrix.load: {len(loads)} resources but matrix.capacity has {len(caps)}")
        for r, cap in enumerate(caps):
            where = "matrix.capacity" + (f"[{r}]" if len(caps) > 1 else "")
            if len(cap) != n_g:
                raise ValueError(f"{where}: {len(cap)} entries, expected {n_g} (one per GPU)")
            for g, v in enumerate(cap):
                if v < 0:
                    raise ValueError(f"{where}[{g}]: capacity must be >= 0 (got {v})")
        for r, load in enumerate(loads):
            where = "matrix.load" + (f"[{r}]" if len(loads) > 1 else "")
            if len(load) != n_t:
                raise ValueError(f"{where}: {len(load)} rows, expected {n_t} (one per task)")
            for t, row in enumerate(load):
                if len(row) != n_g:
                    raise ValueError(f"{where}[{t}]: ragged row of {len(row)} entries, expected {n_g}")
                for g, v in enumerate(row):
                    if self.cost[t][g] is None:
                        continue
                    if v is None:
                        raise ValueError(
                            f"{where}[{t}][{g}]: null load where cost is given ({self.cost[t][g]})"
                        )
                    if v < 0 or not math.isfinite(v):
                        raise ValueError(f"{where}[{t}][{g}]: load must be >= 0 (got {v})")
        for name, ids, n in (("task_ids", self.task_ids, n_t), ("gpu_ids", self.gpu_ids, n_g)):
            if ids is None:
                continue
            if len(ids) != n:
                raise ValueError(f"matrix.{name}: {len(ids)} ids, expected {n}")
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise ValueError(f"matrix.{name}: duplicate id {dup!r}")
        return self


class MatrixProblem(Spec):
    """The JSON document `{"matrix": {...}}`."""

    matrix: Matrix

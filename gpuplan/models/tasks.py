"""Tasks: what must (or may) be placed on a GPU."""

from __future__ import annotations

from pydantic import Field, model_validator

from gpuplan.models.base import Spec


class Task(Spec):
    """One task (a single-GPU replica): its GPU share, memory, work and placement rules."""

    id: str = Field(min_length=1, description="Unique task id.")
    gpu_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Fraction of one GPU the task uses, in (0, 1]; shares on one GPU sum to <= 1.",
    )
    gpu_memory_gb: float = Field(default=0.0, ge=0, description="GPU memory the task needs, in GB.")
    work_h: float | None = Field(
        default=None,
        gt=0,
        description="Work in GPU-hours on the reference GPU (speed 1); duration = work_h / speed.",
    )
    duration_h: dict[str, float] | None = Field(
        default=None,
        description="Explicit duration in hours per GPU type; overrides work_h for those types.",
    )
    priority: int = Field(
        default=0,
        description="Higher runs first: a task is never dropped while a lower-priority one holds "
        "the room it needs.",
    )
    optional: bool = Field(
        default=False,
        description="An optional task may be left unplaced (at a penalty); a required one may not.",
    )
    allowed_types: list[str] | None = Field(
        default=None, description="GPU types the task may run on; None means any."
    )

    @model_validator(mode="after")
    def _has_duration(self) -> Task:
        if self.work_h is None and not self.duration_h:
            raise ValueError("give work_h or duration_h (a task needs a duration)")
        for name, hours in (self.duration_h or {}).items():
            if not hours > 0:
                raise ValueError(f"duration_h[{name!r}] must be > 0 (got {hours})")
        return self

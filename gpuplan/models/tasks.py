"""Tasks: what must (or may) be placed on a GPU."""

from __future__ import annotations

from pydantic import Field, model_validator

from gpuplan.models.base import Spec


class Task(Spec):
    """One task: a replica on one GPU, or a gang of `gpus` GPUs on one node; its resources, work and
    placement rules."""

    id: str = Field(min_length=1, description="Unique task id.")
    gpus: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Gang size: the task gets this many GPUs, all on one node (the plan lists each); 0 "
        "for a CPU-only task, placed on one node (with or without GPUs) by cpu_cores and memory_gb.",
    )
    same_type: bool = Field(
        default=False, description="For a gang: all its GPUs of one type (nodes may mix types)."
    )
    gpu_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Fraction of each of its GPUs the task uses, in (0, 1]; shares on one GPU sum to <= 1"
        " (at every instant, in a scheduled problem), so a whole-GPU task (1) has its GPUs to itself.",
    )
    gpu_memory_gb: float = Field(
        default=0.0, ge=0, description="GPU memory the task needs on each of its GPUs, in GB."
    )
    cpu_cores: float = Field(default=0.0, ge=0, description="CPU cores the task takes on its node.")
    memory_gb: float = Field(default=0.0, ge=0, description="Host memory in GB the task takes on its node.")
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
    forbidden_types: list[str] = Field(default_factory=list, description="GPU types the task may not use.")
    min_gpu_memory_gb: float = Field(
        default=0.0, ge=0, description="Only GPU types with at least this much memory (e.g. for speed)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Labels a node must carry (all of them) to take the task."
    )
    anti_affinity: str | None = Field(
        default=None,
        description="Spread group: tasks naming the same group go on distinct nodes (service replicas). "
        "In a scheduled problem the rule holds at any instant: two of them never run on one node at the "
        "same time, but may use one node one after the other.",
    )
    input_gb: float = Field(
        default=0.0,
        ge=0,
        description="Input data in GB, read over its node's link: adds input_gb x 8 / bandwidth_gbps "
        "seconds to the duration (and so to cost and GPU time).",
    )
    dataset: str | None = Field(
        default=None,
        description="Name of the input's dataset: tasks of one dataset on one node share one copy, so "
        "the problem's transfer_cost_per_gb is paid once per node.",
    )
    current_gpus: list[str] | None = Field(
        default=None, description="Where the task runs now (re-planning); moving it costs migration_cost."
    )
    migration_cost: float = Field(
        default=0.0,
        ge=0,
        description="Cost of moving a running task off its current GPUs (split evenly over its gang).",
    )
    release_h: float = Field(
        default=0.0,
        ge=0,
        description="Earliest start, in hours from the plan's time zero (scheduling: the plan then says "
        "when each task runs).",
    )
    deadline_h: float | None = Field(
        default=None,
        gt=0,
        description="Hard deadline in hours from time zero: the task must end by then, or be left out "
        "(optional) / the plan is infeasible (required). None: no deadline. Must be later than release_h.",
    )
    due_h: float | None = Field(
        default=None,
        ge=0,
        description="Soft due time in hours from time zero: ending later costs weight x (end - due_h) "
        "under the 'tardiness' criterion, and is otherwise allowed. None: never tardy.",
    )
    after: list[str] = Field(
        default_factory=list,
        description="Ids of tasks that must end before this one starts (precedence, no cycles); when one "
        "of them is left out, so is this task.",
    )
    group: str | None = Field(
        default=None,
        min_length=1,
        description="Kind of repeated work this task is (e.g. 'finetune-7b'): runs of one group on one GPU "
        "type are pooled by `gpuplan calibrate` to learn its duration there. None: not pooled (the task "
        "still counts toward its GPU type's speed).",
    )
    weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of this task's end time in the 'completion_time' criterion (weight x end) "
        "and of its lateness in 'tardiness'.",
    )

    @model_validator(mode="after")
    def _has_duration(self) -> Task:
        if self.gpus == 0:
            self._check_cpu_only()
        if self.work_h is None and not self.duration_h:
            raise ValueError("give work_h or duration_h (a task needs a duration)")
        for name, hours in (self.duration_h or {}).items():
            if not hours > 0:
                raise ValueError(f"duration_h[{name!r}] must be > 0 (got {hours})")
        if self.gpus > 1 and self.gpu_share < 1:
            raise ValueError(
                f"a gang of {self.gpus} GPUs takes whole GPUs: gpu_share must be 1 (got {self.gpu_share})"
            )
        if self.deadline_h is not None and self.deadline_h <= self.release_h:
            raise ValueError(
                f"deadline_h: {self.deadline_h:g} h is not later than release_h {self.release_h:g} h, so "
                "the task has no time to run"
            )
        if self.current_gpus is not None and len(self.current_gpus) != self.gpus:
            raise ValueError(
                f"current_gpus lists {len(self.current_gpus)} GPU(s) for a task of {self.gpus} GPU(s)"
            )
        return self

    def time_field(self) -> str | None:
        """The first scheduling field this task uses (release_h > 0, deadline_h, due_h, after), or None."""
        used = {
            "release_h": self.release_h > 0,
            "deadline_h": self.deadline_h is not None,
            "due_h": self.due_h is not None,
            "after": bool(self.after),
        }
        return next((name for name, on in used.items() if on), None)

    def _check_cpu_only(self) -> None:
        """A CPU-only task (gpus 0) takes no GPU: GPU fields would be silently meaningless, so they are
        refused; its duration is work_h (it runs at speed 1 on any node)."""
        gpu_only = {
            "gpu_share": self.gpu_share != 1.0,
            "gpu_memory_gb": self.gpu_memory_gb > 0,
            "allowed_types": self.allowed_types is not None,
            "forbidden_types": bool(self.forbidden_types),
            "min_gpu_memory_gb": self.min_gpu_memory_gb > 0,
            "same_type": self.same_type,
            "duration_h": self.duration_h is not None,
            "current_gpus": self.current_gpus is not None,
        }
        for name, bad in gpu_only.items():
            if bad:
                how = "give work_h instead" if name == "duration_h" else "leave it out"
                raise ValueError(
                    f"{name}: a CPU-only task (gpus: 0) takes no GPU, so {name} does not apply "
                    f"(got {getattr(self, name)!r}): {how}"
                )

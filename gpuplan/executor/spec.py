"""The executor's own inputs: how to run each task (RunSpec) and a simulated fleet (SimFleet).

The Task model says what a task needs, not how to start it; a RunSpec (`--commands commands.json`)
maps task ids to an argv list, environment, checkpoint directory and retry limit. A SimFleet
(`--devices sim.json`) describes GPUs and a script of timed readings and faults, so every test and
benchmark runs without a GPU.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gpuplan.models.base import check_magnitudes
from gpuplan.models.objective import MAX_SEED, MAX_WORKERS


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _magnitudes(self) -> _Strict:
        check_magnitudes(self)
        return self


class TaskRun(_Strict):
    """How to start one task: its argv (never a shell string), environment and retries."""

    argv: list[str] = Field(min_length=1, description="Program and arguments, e.g. ['python', 'train.py'].")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(default=None, description="Working directory; default: where `gpuplan run` ran.")
    checkpoint_dir: str | None = Field(
        default=None,
        description="Directory that survives retries and moves; created by the executor and passed as "
        "GPUPLAN_CHECKPOINT_DIR.",
    )
    max_retries: int | None = Field(
        default=None, ge=0, le=100, description="Retries after a failed attempt; default: the spec's."
    )

    @field_validator("argv")
    @classmethod
    def _argv_not_blank(cls, argv: list[str]) -> list[str]:
        if not argv[0].strip():
            raise ValueError(f"argv[0] must name a program (got {argv[0]!r})")
        return argv

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
            if name == "CUDA_VISIBLE_DEVICES":
                raise ValueError("CUDA_VISIBLE_DEVICES is set by the executor from the task's GPUs")
        return env


class RunSpec(_Strict):
    """Commands for the tasks of a plan (the `--commands` file)."""

    tasks: dict[str, TaskRun] = Field(description="Task id -> how to run it.")
    max_retries: int = Field(default=2, ge=0, le=100, description="Default retries after a failed attempt.")

    def retries(self, task: str) -> int:
        """Retry limit for `task`."""
        own = self.tasks[task].max_retries
        return self.max_retries if own is None else own


class SimGPU(_Strict):
    """One simulated GPU: identity, capacity and its readings at time 0."""

    id: str = Field(min_length=1, description="GPU id used in problems and plans.")
    uuid: str = Field(min_length=1, description="Device UUID, as CUDA_VISIBLE_DEVICES receives it.")
    model: str = Field(min_length=1, description="GPU model name (the gpuplan GPU type).")
    memory_gb: float = Field(gt=0)
    power_limit_w: float = Field(default=300.0, gt=0)
    temperature_c: float = Field(default=40.0)
    utilization: float = Field(default=0.0, ge=0, le=100, description="GPU utilization in percent.")
    memory_used_gb: float = Field(default=0.0, ge=0)
    power_w: float = Field(default=50.0, ge=0)


class SimEvent(_Strict):
    """A scripted change at `at_s` seconds after the run started: readings or a fault."""

    at_s: float = Field(ge=0, description="Seconds after the run's start.")
    gpu: str = Field(min_length=1, description="Id of the simulated GPU.")
    fail: bool | None = Field(default=None, description="True: the GPU is lost (fails every read).")
    temperature_c: float | None = None
    utilization: float | None = Field(default=None, ge=0, le=100)
    memory_used_gb: float | None = Field(default=None, ge=0)
    power_w: float | None = Field(default=None, ge=0)
    ecc_errors: int | None = Field(default=None, ge=0, description="Uncorrected ECC error count.")
    xid: int | None = Field(default=None, ge=0, description="An XID critical error code.")


class SimFleet(_Strict):
    """A simulated machine: its GPUs and a script of timed events."""

    node: str = Field(default="sim", min_length=1, description="Node id for `gpuplan inventory`.")
    gpus: list[SimGPU] = Field(min_length=1)
    script: list[SimEvent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids(self) -> SimFleet:
        seen: set[str] = set()
        for k, g in enumerate(self.gpus):
            if g.id in seen:
                raise ValueError(f"gpus[{k}].id: duplicate GPU id {g.id!r}")
            seen.add(g.id)
        uuids: set[str] = set()
        for k, g in enumerate(self.gpus):
            if g.uuid in uuids:
                raise ValueError(f"gpus[{k}].uuid: duplicate UUID {g.uuid!r}")
            uuids.add(g.uuid)
        for k, e in enumerate(self.script):
            if e.gpu not in seen:
                raise ValueError(f"script[{k}].gpu: unknown GPU {e.gpu!r}")
        return self


class Settings(_Strict):
    """Executor timing and re-planning knobs (CLI flags; stored in the journal for resume)."""

    sample_interval_s: float = Field(default=1.0, gt=0, description="Seconds between GPU samples.")
    poll_interval_s: float = Field(default=0.05, gt=0, description="Seconds between lifecycle checks.")
    grace_s: float = Field(default=10.0, ge=0, description="SIGTERM to SIGKILL grace when stopping a task.")
    replan_time_limit_s: float = Field(default=5.0, gt=0, description="Optimizer time limit per re-plan.")
    replan_solver: str = Field(default="auto", description="Optimizer backend for re-plans.")
    migration_cost: float = Field(
        default=1000.0, ge=0, description="Migration cost given to running tasks so they stay where they are."
    )
    workers: int | None = Field(
        default=None, ge=1, le=MAX_WORKERS, description="Optimizer threads for re-plans."
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    hour_s: float = Field(
        default=3600.0,
        gt=0,
        description="Wall-clock seconds per planned hour: a scheduled task's release_h is honoured as 'not"
        " before the run's start + release_h x hour_s', and re-plans shift times by the hours elapsed."
        " Tests shrink it so planned hours take a fraction of a second.",
    )

    @field_validator("replan_solver")
    @classmethod
    def _solver(cls, name: str) -> str:
        if name not in ("auto", "greedy", "cpsat"):
            raise ValueError(f"must be auto, greedy or cpsat (got {name!r})")
        return name

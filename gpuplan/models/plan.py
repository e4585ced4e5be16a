"""What comes back: a verified plan, with objective, proven bound and gap."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuplan.status import Status

SCHEMA_VERSION = "1.4"
# 1.1: assignments carry `moved` (re-planning).
# 1.2: `solver` names one backend and `phases` lists what ran; `stats` keep booleans; `cost` of every
#      assignment is money; `optimal` means a relative gap within 1e-6; drop penalties use one formula
#      in user units (the GAP core's first tier was 2·S + 1/scale, now 2·S + 1).
# 1.3: assignments carry `start_h` and `end_h` (hours from the plan's time zero) for scheduled problems
#      (tasks with release_h, deadline_h, due_h or after; time criteria), None otherwise.
# 1.4: `calibration` (optional) says which speeds and durations came from measured runs and which were
#      declared (`gpuplan solve --calibration`); None for a plan made from declared values alone.


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Assignment(_Out):
    """One placed task."""

    task: str
    gpus: list[str]
    node: str | None = None
    gpu_type: str | None = None
    cost: float = Field(description="Cost of this placement (matrix cost, or GPU-hours x price).")
    duration_h: float | None = None
    moved: bool | None = Field(
        default=None, description="Re-planning: True when a running task leaves one of its current GPUs."
    )
    start_h: float | None = Field(
        default=None,
        description="Scheduled problems: when the task starts, in hours from the plan's time zero (all its"
        " GPUs at once). None for a plan without times.",
    )
    end_h: float | None = Field(
        default=None,
        description="Scheduled problems: when the task ends, start_h + duration_h (it runs without pause)."
        " None for a plan without times.",
    )


class Unassigned(_Out):
    """A task left out, and why."""

    task: str
    reason: str


class GPUUsage(_Out):
    """How full one GPU is, per resource."""

    gpu: str
    node: str | None = None
    tasks: int
    used: dict[str, float]
    capacity: dict[str, float]
    utilization: float = Field(
        description="Largest used/capacity ratio over the GPU's resources (share and memory side by"
        " side, GPU time with a horizon; the matrix form's own resources)."
    )


class Incumbent(_Out):
    """A solution found during the search."""

    time_s: float
    objective: float


class Scaling(_Out):
    """How the program was made integer for CP-SAT: value_int = round(value x scale)."""

    cost_scale: float
    load_scales: dict[str, float]
    exact: bool = Field(
        description="True when every scaled value is an exact integer; otherwise loads were "
        "rounded up and capacities down (a safe approximation)."
    )


class ValueSource(_Out):
    """One speed or duration the plan used, and where it came from."""

    gpu_type: str
    group: str | None = Field(
        default=None, description="The task group of a duration; None for the GPU type's speed."
    )
    quantity: Literal["speed", "duration_h"] = Field(
        description="'speed': the type's speed (work_h / speed); 'duration_h': the group's hours on the type."
    )
    value: float = Field(description="The value the plan used.")
    declared: float | None = Field(
        default=None, description="The problem's own value (None: the problem did not declare one)."
    )
    source: Literal["calibration", "declared"]
    observations: int = Field(description="Successful attempts behind the fitted value (0: none).")
    tasks: int = Field(description="Tasks of the problem this value applies to.")
    note: str = ""


class CalibrationUse(_Out):
    """How a calibration changed the problem before the solve (`gpuplan solve --calibration`)."""

    file: str | None = None
    min_observations: int = Field(description="Fewest observations for a fitted value to be used.")
    values: list[ValueSource] = Field(default_factory=list)
    tasks_calibrated: int = Field(description="Tasks with at least one duration from the calibration.")
    tasks_declared: int = Field(description="Tasks planned from their declared durations alone.")


def _label(a: Assignment) -> str:
    """A task as the summary shows it: its id, and when it runs in a plan with times."""
    if a.start_h is None or a.end_h is None:
        return a.task
    return f"{a.task} [{a.start_h:g}-{a.end_h:g} h]"


def _number(value: bool | int | float | str) -> str:
    """A stats value for people: numbers to 4 digits, anything else as it is (a plan read from a file
    may hold any of the four)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.4g}"
    return str(value)


class Plan(_Out):
    """A solve's result. `objective` = placement cost + penalties of dropped optional tasks."""

    schema_version: str = SCHEMA_VERSION
    status: Status
    objective: float | None = None
    bound: float | None = Field(default=None, description="Proven lower bound on the objective.")
    gap: float | None = None
    solver: str = Field(
        description="The backend whose plan this is: greedy, cpsat, milp, portfolio (the GAP strategy's"
        " phases together), lns (the large-neighbourhood search of a placement or a schedule), tiered"
        " (one stage per priority tier) or presolve (nothing to search)."
    )
    phases: list[str] = Field(
        default_factory=list, description="What ran, in order (greedy variants, moves, CP-SAT, ...)."
    )
    solver_requested: str
    solver_reason: str = ""
    wall_time_s: float
    placement_cost: float | None = None
    penalty: float | None = None
    assignments: list[Assignment] = Field(default_factory=list)
    unassigned: list[Unassigned] = Field(default_factory=list)
    gpus: list[GPUUsage] = Field(default_factory=list)
    warm_start_objective: float | None = None
    incumbents: list[Incumbent] = Field(default_factory=list)
    scaling: Scaling | None = None
    stats: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Solver statistics: numbers as numbers, flags as booleans."
    )
    message: str = ""
    calibration: CalibrationUse | None = Field(
        default=None,
        description="Which speeds and durations came from measured runs and which were declared; None when"
        " the plan was made from the problem's values alone.",
    )

    @property
    def is_feasible(self) -> bool:
        """True when the plan holds a solution."""
        return self.status.has_solution

    def summary(self) -> str:
        """A short human-readable report: status, numbers, then placements per GPU (and per node for
        CPU-only tasks)."""
        fmt = "—" if self.objective is None else f"{self.objective:,.4g}"
        bound = "—" if self.bound is None else f"{self.bound:,.4g}"
        gap = "—" if self.gap is None else f"{100 * self.gap:.2f}%"
        lines = [
            f"status    {self.status.value}   solver {self.solver}"
            + (f" (asked: {self.solver_requested})" if self.solver_requested != self.solver else ""),
            f"objective {fmt}   bound {bound}   gap {gap}   time {self.wall_time_s:.2f}s",
        ]
        if self.placement_cost is not None:
            lines.append(
                f"placed    {len(self.assignments)} tasks, money {sum(a.cost for a in self.assignments):,.4g}"
                + (f", penalty {self.penalty:,.4g}" if self.penalty else "")
            )
        crit = {k.removeprefix("criterion_"): v for k, v in self.stats.items() if k.startswith("criterion_")}
        if crit:
            lines.append("criteria  " + ", ".join(f"{k} {_number(v)}" for k, v in crit.items()))
        if self.solver_reason:
            lines.append(f"why       {self.solver_reason}")
        if self.message:
            lines.append(f"note      {self.message}")
        if self.calibration is not None:
            c = self.calibration
            fitted = sum(v.source == "calibration" for v in c.values)
            lines.append(
                f"calibrated {fitted} of {len(c.values)} values from measured runs; tasks: "
                f"{c.tasks_calibrated} calibrated, {c.tasks_declared} declared"
            )
        by_gpu: dict[str, list[str]] = {}
        for a in self.assignments:
            for g in a.gpus:
                by_gpu.setdefault(g, []).append(_label(a))
        if self.gpus:
            lines.append("")
            lines.append(f"{'GPU':<24} {'util':>6}  tasks")
            for u in self.gpus:
                names = by_gpu.get(u.gpu, [])
                shown = ", ".join(names[:8]) + (f", … (+{len(names) - 8})" if len(names) > 8 else "")
                lines.append(f"{u.gpu:<24} {100 * u.utilization:5.1f}%  {shown or '-'}")
        by_node: dict[str, list[str]] = {}  # CPU-only tasks: on a node, on no GPU
        for a in self.assignments:
            if not a.gpus:
                by_node.setdefault(a.node or "-", []).append(_label(a))
        if by_node:
            lines.append("")
            lines.append(f"{'node (CPU-only tasks)':<31}  tasks")
            for node, names in by_node.items():
                shown = ", ".join(names[:8]) + (f", … (+{len(names) - 8})" if len(names) > 8 else "")
                lines.append(f"{node:<31}  {shown}")
        if self.unassigned:
            lines.append("")
            lines.append("unassigned:")
            lines.extend(f"  {u.task}: {u.reason}" for u in self.unassigned)
        return "\n".join(lines)

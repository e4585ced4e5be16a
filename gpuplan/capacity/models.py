"""Capacity-planning specs: the workload, the catalog of offers, and the report that comes back."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpuplan.models.base import Spec

REPORT_SCHEMA_VERSION = "1.0"


def _first_dup(values: list[str]) -> tuple[int, str] | None:
    seen: set[str] = set()
    for k, v in enumerate(values):
        if v in seen:
            return k, v
        seen.add(v)
    return None


class WorkloadTask(Spec):
    """One job of the workload: whole GPUs (a gang of `gpus` on one node) for work_h / speed hours."""

    id: str = Field(min_length=1, description="Unique task id.")
    work_h: float = Field(
        gt=0, description="Work in GPU-hours on the reference GPU (speed 1): duration = work_h / speed."
    )
    gpus: int = Field(
        default=1, ge=1, le=64, description="Gang size: this many whole GPUs at once, all on one node."
    )
    gpu_memory_gb: float = Field(default=0.0, ge=0, description="GPU memory needed on each of its GPUs, GB.")
    priority: int = Field(default=0, description="Higher is placed first when optional work competes.")
    optional: bool = Field(
        default=False,
        description="Optional work does not size the fleet; it is placed on the room left, or reported.",
    )
    deadline_h: float | None = Field(
        default=None,
        gt=0,
        description="Hours from the start of the horizon by which the task must finish; None = the horizon.",
    )
    allowed_types: list[str] | None = Field(
        default=None, description="GPU type names (catalog offers' gpu.name) it may use; None means any."
    )


class Workload(Spec):
    """The jobs of one planning horizon; all are released at time 0."""

    horizon_h: float = Field(gt=0, description="Planning horizon = billing period in hours (e.g. 720).")
    tasks: list[WorkloadTask] = Field(description="Jobs to run within the horizon.")

    @model_validator(mode="after")
    def _check(self) -> Workload:
        dup = _first_dup([t.id for t in self.tasks])
        if dup:
            raise ValueError(f"tasks[{dup[0]}].id: duplicate task id {dup[1]!r}")
        for i, t in enumerate(self.tasks):
            if t.deadline_h is not None and t.deadline_h > self.horizon_h:
                raise ValueError(
                    f"tasks[{i}].deadline_h: {t.deadline_h:g} is beyond the horizon {self.horizon_h:g}"
                    f" (task {t.id!r})"
                )
        return self

    def deadline(self, k: int) -> float:
        """Deadline of task k in hours (the horizon when none is given)."""
        d = self.tasks[k].deadline_h
        return self.horizon_h if d is None else d


class OfferGPU(Spec):
    """The GPU model of an offer."""

    name: str = Field(min_length=1, description="GPU type name, e.g. 'H100-80G' (tasks' allowed_types).")
    memory_gb: float = Field(gt=0, description="GPU memory in GB.")
    speed: float = Field(default=1.0, gt=0, description="Throughput relative to the reference GPU.")
    power_w: float = Field(default=0.0, ge=0, description="Board power in watts (reported, not priced).")


class Offer(Spec):
    """Nodes one can rent: a GPU type, GPUs per node, an hourly price and a node-count range.

    Committed use: committing the offer for the whole horizon bills every node of it at
    price x (1 - commit_discount), and requires at least commit_min_nodes nodes. Without a
    commitment every node is billed at the on-demand price. Either way a rented node is billed for
    the whole horizon.
    """

    name: str = Field(min_length=1, description="Unique offer name, e.g. 'h100x8-ondemand'.")
    gpu: OfferGPU = Field(description="The GPU model in these nodes.")
    gpus_per_node: int = Field(ge=1, le=64, description="GPUs per node.")
    price_per_node_hour: float = Field(ge=0, description="On-demand price of one node for one hour.")
    min_nodes: int = Field(default=0, ge=0, description="Least number of nodes to take of this offer.")
    max_nodes: int = Field(default=64, ge=0, le=100_000, description="Most nodes available of this offer.")
    commit_discount: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Fraction off the price of every node when the offer is committed for the horizon.",
    )
    commit_min_nodes: int = Field(
        default=1, ge=1, description="A commitment covers at least this many nodes (billed even if idle)."
    )

    @model_validator(mode="after")
    def _range(self) -> Offer:
        if self.max_nodes < self.min_nodes:
            raise ValueError(f"max_nodes {self.max_nodes} is below min_nodes {self.min_nodes}")
        return self


class Catalog(Spec):
    """Offers to choose from, with a notice on where their prices come from."""

    notice: str = Field(
        default="",
        description="Where the prices come from, e.g. 'illustrative prices, not quotes'; echoed in reports.",
    )
    currency: str = Field(default="USD", min_length=1, description="Currency of every price.")
    offers: list[Offer] = Field(min_length=1, description="The offers.")

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        dup = _first_dup([o.name for o in self.offers])
        if dup:
            raise ValueError(f"offers[{dup[0]}].name: duplicate offer {dup[1]!r}")
        return self


# --- the report ------------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FleetLine(_Out):
    """Nodes taken of one offer."""

    offer: str
    gpu_type: str
    nodes: int
    gpus: int
    committed: bool = Field(description="Billed at the committed-use price.")
    node_price_per_hour: float = Field(description="Effective price of one node-hour (after discount).")
    cost: float = Field(description="nodes x effective price x horizon.")


class TypeUsage(_Out):
    """How busy the GPUs of one offer are in the proving assignment."""

    offer: str
    gpu_type: str
    gpus: int
    gpu_hours_used: float
    gpu_hours_available: float
    utilization: float


class Round(_Out):
    """One fleet that was proved (or failed to be)."""

    round: int
    change: str = Field(default="", description="How this fleet came about: sizing MILP, +1 <offer>, ...")
    fleet: dict[str, int]
    cost: float
    proven: bool
    method: str = Field(
        description="What produced the schedule: time-table, time-table+repair, engine+time-table+repair."
    )
    failed: list[str] = Field(description="Required tasks that did not fit (first 20).")
    n_failed: int
    why: str = ""


class Alternative(_Out):
    """The cheapest fleet of a different mix, from the sizing MILP (not proven by an assignment)."""

    without: str = Field(description="The offer this mix does without (or 'different counts').")
    fleet: dict[str, int]
    cost: float
    extra_cost: float = Field(description="cost minus the chosen fleet's sizing cost.")


class Placement(_Out):
    """One task in the proving schedule."""

    task: str
    offer: str
    node: str
    gpus: list[int] = Field(description="GPU indices within the node.")
    start_h: float
    end_h: float
    deadline_h: float


class Issue(_Out):
    """A task and why it cannot run (or was left out)."""

    task: str
    reason: str


class CapacityReport(_Out):
    """The chosen fleet, its cost and bound, and the assignment that proves it."""

    schema_version: str = REPORT_SCHEMA_VERSION
    status: str = Field(
        description="'proven' (fleet with a checked assignment), 'infeasible' (input cannot fit: see "
        "infeasible), 'unproven' (no checked assignment within the rounds or time)."
    )
    message: str = ""
    horizon_h: float
    currency: str
    price_notice: str
    fleet: list[FleetLine] = Field(default_factory=list)
    cost: float | None = None
    lp_bound: float | None = Field(default=None, description="LP relaxation of the sizing MILP.")
    milp_bound: float | None = Field(
        default=None, description="Optimum of the sizing MILP (a lower bound on any fleet that fits)."
    )
    gap: float | None = Field(default=None, description="(cost - milp_bound) / cost.")
    gap_lp: float | None = Field(default=None, description="(cost - lp_bound) / cost.")
    utilization: list[TypeUsage] = Field(default_factory=list)
    rounds: list[Round] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    assignments: list[Placement] = Field(default_factory=list)
    optional_left_out: list[Issue] = Field(default_factory=list)
    infeasible: list[Issue] = Field(default_factory=list)
    stats: dict[str, bool | int | float | str] = Field(default_factory=dict)

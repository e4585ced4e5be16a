"""The fleet: GPU types, GPUs and the nodes that hold them."""

from __future__ import annotations

from pydantic import Field, model_validator

from gpuplan.models.base import Spec

#: Most GPUs in one problem, listed and counted together: the program and the plan keep one entry per
#: GPU (its usage, its id), so a larger fleet is refused rather than solved past its time limit.
MAX_GPUS = 100_000


class GPUType(Spec):
    """A GPU model: memory, throughput relative to the reference GPU, price and power."""

    name: str = Field(min_length=1, description="Type name referenced by nodes and tasks, e.g. 'A100-80G'.")
    memory_gb: float = Field(gt=0, description="GPU memory in GB.")
    speed: float = Field(
        default=1.0,
        gt=0,
        description="Throughput relative to the reference GPU: duration = work_h / speed.",
    )
    cost_per_hour: float = Field(default=0.0, ge=0, description="Price of one GPU-hour.")
    power_w: float = Field(default=0.0, ge=0, description="Board power in watts.")


class GPU(Spec):
    """One GPU listed by id, with its health and current temperature."""

    id: str = Field(min_length=1, description="Unique GPU id across the fleet.")
    type: str = Field(description="Name of a GPU type.")
    healthy: bool = Field(default=True, description="An unhealthy GPU receives no task.")
    temperature_c: float | None = Field(
        default=None,
        description="Current temperature; above the problem's temperature_limit_c it receives nothing.",
    )


class Node(Spec):
    """A machine holding GPUs, given by type and count or listed one by one."""

    id: str = Field(min_length=1, description="Unique node id.")
    gpu_counts: dict[str, int] = Field(
        default_factory=dict,
        description="GPU type -> count; these GPUs get ids '<node>/<type>/<k>'.",
    )
    gpus: list[GPU] = Field(default_factory=list, description="GPUs listed one by one.")
    cpu_cores: float | None = Field(
        default=None, ge=0, description="CPU cores the node offers to tasks; None means unlimited."
    )
    memory_gb: float | None = Field(
        default=None, ge=0, description="Host memory in GB the node offers to tasks; None means unlimited."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Node labels, matched by tasks' node_selector (e.g. zone, rack)."
    )
    bandwidth_gbps: float | None = Field(
        default=None,
        gt=0,
        description="Link bandwidth in Gbit/s for tasks' input data; None means data is local (no transfer).",
    )

    @model_validator(mode="after")
    def _counts_positive(self) -> Node:
        for name, count in self.gpu_counts.items():
            if count < 0:
                raise ValueError(f"gpu_counts[{name!r}] must be >= 0 (got {count})")
            if count > MAX_GPUS:
                raise ValueError(
                    f"gpu_counts[{name!r}]: {count:,} GPUs is over the limit of {MAX_GPUS:,} GPUs per problem"
                )
        return self

    @property
    def n_gpus(self) -> int:
        """GPUs of the node, listed and counted."""
        return len(self.gpus) + sum(self.gpu_counts.values())

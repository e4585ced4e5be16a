"""A whole planning problem: fleet, tasks, time horizon, objective and options."""

from __future__ import annotations

from collections import Counter

from pydantic import Field, model_validator

from gpuplan.models.base import Spec
from gpuplan.models.fleet import GPU, GPUType, Node
from gpuplan.models.objective import Objective, SolveOptions
from gpuplan.models.tasks import Task


def _first_duplicate(ids: list[str]) -> tuple[int, str] | None:
    seen: set[str] = set()
    for k, value in enumerate(ids):
        if value in seen:
            return k, value
        seen.add(value)
    return None


class Problem(Spec):
    """Fleet plus tasks. Without `horizon_h` tasks run side by side (shares and memory add up on a
    GPU); with it, each GPU works through its tasks within the horizon (GPU-hours add up)."""

    gpu_types: list[GPUType] = Field(min_length=1, description="GPU models used by the nodes.")
    nodes: list[Node] = Field(min_length=1, description="Machines and the GPUs they hold.")
    tasks: list[Task] = Field(description="Tasks to place.")
    horizon_h: float | None = Field(
        default=None,
        gt=0,
        description="Planning horizon in hours: each GPU's tasks must fit in this time budget.",
    )
    temperature_limit_c: float | None = Field(
        default=None, description="GPUs hotter than this receive no task."
    )
    transfer_cost_per_gb: float = Field(
        default=0.0,
        ge=0,
        description="Price of moving one GB of input onto a node (once per node for a shared dataset).",
    )
    objective: Objective = Field(default_factory=Objective)
    options: SolveOptions = Field(default_factory=SolveOptions)

    @model_validator(mode="after")
    def _check_references(self) -> Problem:
        names = [t.name for t in self.gpu_types]
        dup = _first_duplicate(names)
        if dup:
            raise ValueError(f"gpu_types[{dup[0]}].name: duplicate GPU type {dup[1]!r}")
        known = set(names)
        dup = _first_duplicate([n.id for n in self.nodes])
        if dup:
            raise ValueError(f"nodes[{dup[0]}].id: duplicate node id {dup[1]!r}")
        for i, node in enumerate(self.nodes):
            for name in node.gpu_counts:
                if name not in known:
                    raise ValueError(
                        f"nodes[{i}].gpu_counts: unknown GPU type {name!r} in node {node.id!r}"
                        f" (known: {', '.join(sorted(known))})"
                    )
            for k, gpu in enumerate(node.gpus):
                if gpu.type not in known:
                    raise ValueError(
                        f"nodes[{i}].gpus[{k}].type: unknown GPU type {gpu.type!r} for GPU"
                        f" {gpu.id!r} (known: {', '.join(sorted(known))})"
                    )
        gpu_ids = [g.id for _, g in self.all_gpus()]
        dup = _first_duplicate(gpu_ids)
        if dup:
            raise ValueError(f"duplicate GPU id {dup[1]!r}")
        gpu_set = set(gpu_ids)
        dup = _first_duplicate([t.id for t in self.tasks])
        if dup:
            raise ValueError(f"tasks[{dup[0]}].id: duplicate task id {dup[1]!r}")
        for i, task in enumerate(self.tasks):
            for k, name in enumerate(task.allowed_types or []):
                if name not in known:
                    raise ValueError(
                        f"tasks[{i}].allowed_types[{k}]: unknown GPU type {name!r} in task"
                        f" {task.id!r} (known: {', '.join(sorted(known))})"
                    )
            for k, name in enumerate(task.forbidden_types):
                if name not in known:
                    raise ValueError(
                        f"tasks[{i}].forbidden_types[{k}]: unknown GPU type {name!r} in task"
                        f" {task.id!r} (known: {', '.join(sorted(known))})"
                    )
            for k, gid in enumerate(task.current_gpus or []):
                if gid not in gpu_set:
                    raise ValueError(f"tasks[{i}].current_gpus[{k}]: unknown GPU {gid!r} in task {task.id!r}")
            if task.current_gpus is not None and len(set(task.current_gpus)) != len(task.current_gpus):
                raise ValueError(f"tasks[{i}].current_gpus: a GPU is listed twice in task {task.id!r}")
            for name in task.duration_h or {}:
                if name not in known:
                    raise ValueError(
                        f"tasks[{i}].duration_h: unknown GPU type {name!r} in task {task.id!r}"
                        f" (known: {', '.join(sorted(known))})"
                    )
        return self

    def all_gpus(self) -> list[tuple[Node, GPU]]:
        """Every GPU in fleet order: listed GPUs first, then counted ones, node by node."""
        out: list[tuple[Node, GPU]] = []
        for node in self.nodes:
            out.extend((node, gpu) for gpu in node.gpus)
            for name, count in node.gpu_counts.items():
                out.extend((node, GPU(id=f"{node.id}/{name}/{k}", type=name)) for k in range(count))
        return out

    def gpu_type(self, name: str) -> GPUType:
        """The GPU type called `name`."""
        for t in self.gpu_types:
            if t.name == name:
                return t
        raise KeyError(name)

    def type_counts(self) -> Counter[str]:
        """Number of GPUs of each type."""
        return Counter(g.type for _, g in self.all_gpus())

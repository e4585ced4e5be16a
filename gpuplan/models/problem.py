"""A whole planning problem: fleet, tasks, time horizon, objective and options."""

from __future__ import annotations

from collections import Counter

from pydantic import Field, PrivateAttr, model_validator

from gpuplan.models.base import Spec
from gpuplan.models.fleet import GPU, MAX_GPUS, GPUType, Node
from gpuplan.models.objective import Objective, SolveOptions
from gpuplan.models.tasks import Task


def _first_duplicate(ids: list[str]) -> tuple[int, str] | None:
    seen: set[str] = set()
    for k, value in enumerate(ids):
        if value in seen:
            return k, value
        seen.add(value)
    return None


def _check_after(tasks: list[Task]) -> None:
    """Each `after` names other, known tasks once, and the precedences have no cycle. Linear time and
    no recursion (Kahn's algorithm), so chains of any length are fine."""
    index = {t.id: i for i, t in enumerate(tasks)}
    preds: list[list[int]] = []
    for i, task in enumerate(tasks):
        row: list[int] = []
        for k, tid in enumerate(task.after):
            j = index.get(tid)
            if j is None:
                raise ValueError(f"tasks[{i}].after[{k}]: unknown task {tid!r} in task {task.id!r}")
            if j == i:
                raise ValueError(f"tasks[{i}].after[{k}]: task {task.id!r} lists itself")
            row.append(j)
        dup = _first_duplicate(task.after)
        if dup:
            raise ValueError(f"tasks[{i}].after[{dup[0]}]: task {dup[1]!r} listed twice in task {task.id!r}")
        preds.append(row)
    cycle = _find_cycle(preds)
    if cycle:
        ids = [tasks[j].id for j in cycle]
        shown = ids if len(ids) <= 8 else [*ids[:6], "...", ids[-1]]
        size = "" if len(ids) <= 8 else f", {len(ids)} tasks"
        raise ValueError(
            f"tasks[{cycle[0]}].after: cycle {' -> '.join([*shown, ids[0]])}"
            f" (each must end before the next starts{size})"
        )


def _find_cycle(preds: list[list[int]]) -> list[int]:
    """A cycle of the precedence graph (`preds[b]` holds each a that ends before b starts), in running
    order and starting at its lowest index; [] when there is none."""
    n = len(preds)
    succs: list[list[int]] = [[] for _ in range(n)]
    indegree = [len(row) for row in preds]
    for b, row in enumerate(preds):
        for a in row:
            succs[a].append(b)
    ready = [i for i in range(n) if indegree[i] == 0]
    while ready:  # Kahn: take off every task whose predecessors are all gone
        a = ready.pop()
        for b in succs[a]:
            indegree[b] -= 1
            if indegree[b] == 0:
                ready.append(b)
    left = [i for i in range(n) if indegree[i] > 0]
    if not left:
        return []
    # Every task left has a predecessor left: walking back through them must come round again.
    position: dict[int, int] = {}
    walk: list[int] = []
    v = left[0]
    while v not in position:
        position[v] = len(walk)
        walk.append(v)
        v = next(a for a in preds[v] if indegree[a] > 0)
    cycle = walk[position[v] :][::-1]  # walked backwards: reverse into running order
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


class Problem(Spec):
    """Fleet plus tasks. Without `horizon_h` tasks run side by side (shares and memory add up on a
    GPU); with it, each GPU works through its tasks within the horizon (GPU-hours add up).

    A *scheduled* problem (a task uses release_h > 0, deadline_h, due_h or after, or the objective a
    time criterion) also says when each task runs: every placed task gets a start and runs its
    duration without pause; shares and GPU memory on each GPU, CPU and host memory on each node add
    up over the tasks running at each instant; with `horizon_h`, every placed task ends by it."""

    gpu_types: list[GPUType] = Field(min_length=1, description="GPU models used by the nodes.")
    nodes: list[Node] = Field(min_length=1, description="Machines and the GPUs they hold.")
    tasks: list[Task] = Field(description="Tasks to place.")
    horizon_h: float | None = Field(
        default=None,
        gt=0,
        description="Planning horizon in hours. Unscheduled problem: each GPU's tasks must fit in this "
        "time budget (GPU-hours add up per GPU). Scheduled problem: every placed task ends by the horizon.",
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
    # all_gpus() of the `nodes` list it was built from (a copy with other nodes builds its own)
    _gpus: tuple[list[Node], tuple[tuple[Node, GPU], ...]] | None = PrivateAttr(default=None)

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
        total = sum(node.n_gpus for node in self.nodes)
        if total > MAX_GPUS:
            raise ValueError(
                f"nodes: {total:,} GPUs in all is over the limit of {MAX_GPUS:,} GPUs per problem"
            )
        gpu_ids = self.gpu_ids()
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
        _check_after(self.tasks)
        return self

    @property
    def scheduled(self) -> bool:
        """True when the plan must say when each task runs (see the class docstring)."""
        return self.time_field() is not None

    def time_field(self) -> str | None:
        """The first field that makes the problem scheduled, as a path (`tasks[2].deadline_h`,
        `objective.kind`), or None for a placement-only problem."""
        for i, task in enumerate(self.tasks):
            name = task.time_field()
            if name is not None:
                return f"tasks[{i}].{name}"
        where = self.objective.time_field()
        return None if where is None else f"objective.{where}"

    def all_gpus(self) -> list[tuple[Node, GPU]]:
        """Every GPU in fleet order: listed GPUs first, then counted ones, node by node. Built once
        per `nodes` (compile, decode and verify each ask; counted GPUs are objects made here)."""
        cached = self._gpus
        if cached is not None and cached[0] is self.nodes:
            return list(cached[1])
        out: list[tuple[Node, GPU]] = []
        for node in self.nodes:
            out.extend((node, gpu) for gpu in node.gpus)
            for name, count in node.gpu_counts.items():
                out.extend((node, GPU(id=f"{node.id}/{name}/{k}", type=name)) for k in range(count))
        self._gpus = (self.nodes, tuple(out))
        return out

    def gpu_ids(self) -> list[str]:
        """The ids of `all_gpus`, in the same order, without building a GPU per id."""
        out: list[str] = []
        for node in self.nodes:
            out.extend(gpu.id for gpu in node.gpus)
            for name, count in node.gpu_counts.items():
                out.extend(f"{node.id}/{name}/{k}" for k in range(count))
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

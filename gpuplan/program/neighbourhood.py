r"""A neighbourhood of a fleet program: some of its tasks on the GPUs of some of its nodes.

`sub_fleet` is what a large-neighbourhood search solves exactly: every other task keeps its GPUs.
On a neighbourhood that holds every task placed on its nodes, every term of the fleet objective
but the peak utilization (a maximum) is a sum over tasks, GPUs and nodes, so the neighbourhood's
objective changes by exactly what the whole program's does.

`sub_schedule` is the same for a schedule: some placed tasks of some nodes are free to move, on
those nodes, within a time window :math:`[a, b]`; the tasks of those nodes that run during the
window stay where and when they are (pinned); every other task is left out of it. With
:math:`F` the free tasks and :math:`S, E` the current starts and ends, a free task t gets

.. math::

    r'_t = \max\big(r_t,\ a,\ \max_{(u,t) \in P,\, u \notin F} E_u\big), \qquad
    \bar d'_t = \min\big(\bar d_t,\ b,\ \min_{(t,u) \in P,\, u \notin F,\, u \text{ placed}} S_u\big),

so a schedule of the neighbourhood keeps every precedence with the tasks outside it; a pinned task
gets no release, deadline, due time or weight (its terms are constants). Resources are per GPU and
per node and the free tasks run within :math:`[a, b]` on the nodes, where every task that runs is
in the neighbourhood, so the neighbourhood's schedule keeps every capacity and spread rule of the
whole program. Tasks that are placed stay placed (every task of it is required).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gpuplan.program.fleet import NONE, FleetProgram

if TYPE_CHECKING:
    from gpuplan.program.schedule import ScheduleProgram

#: Task arrays of the fleet program ([T] and [T, C]), cut to the neighbourhood's tasks.
TASK_FIELDS = (
    "gang", "share", "gpu_mem", "cpu", "ram", "same_type", "cpu_only", "spread", "dataset", "optional",
    "priority", "penalty", "weight", "move_cost", "eligible_c", "cost_c", "load_c", "transfer_each",
)  # fmt: skip
#: GPU arrays ([G]) cut to the neighbourhood's GPUs (`gpu_node` is renumbered separately).
GPU_FIELDS = ("gpu_type", "gpu_class", "gpu_ok", "mem_cap")


def sub_fleet(
    p: FleetProgram, tasks: np.ndarray, nodes: np.ndarray, required: np.ndarray | None = None
) -> tuple[FleetProgram, np.ndarray]:
    """The program of `tasks` alone on the GPUs of `nodes` (those `required` must be placed, as
    must the program's required tasks); returns it and the GPU each of its GPUs stands for."""
    tasks = np.asarray(tasks, dtype=np.int64)
    nodes = np.asarray(nodes, dtype=np.int64)
    node_at = np.full(p.n_nodes, NONE, dtype=np.int64)
    node_at[nodes] = np.arange(nodes.size)
    gpus = np.flatnonzero(node_at[p.gpu_node] >= 0)
    gpu_at = np.full(p.n_gpus + 1, NONE, dtype=np.int64)  # the last slot maps NONE to NONE
    gpu_at[gpus] = np.arange(gpus.size)
    changes: dict[str, Any] = {name: getattr(p, name)[tasks] for name in TASK_FIELDS}
    changes.update({name: getattr(p, name)[gpus] for name in GPU_FIELDS})
    if required is not None:
        changes["optional"] = changes["optional"] & ~np.asarray(required, dtype=bool)
    changes["current"] = gpu_at[p.current[tasks]]
    changes["gpu_node"] = node_at[p.gpu_node[gpus]]
    changes["node_cpu"], changes["node_ram"] = p.node_cpu[nodes], p.node_ram[nodes]
    if p.extra_load_c.size:
        changes["extra_load_c"] = p.extra_load_c[:, tasks]
        changes["extra_cap"] = p.extra_cap[:, gpus]
    return p.replace(**changes), gpus


def sub_schedule(
    sp: ScheduleProgram,
    assign: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    free: np.ndarray,
    pinned: np.ndarray,
    nodes: np.ndarray,
    window: tuple[float, float],
) -> tuple[ScheduleProgram, np.ndarray]:
    """The neighbourhood of `free` tasks on `nodes` within `window` (a, b), with `pinned` tasks
    (the module docstring); its tasks are `free` then `pinned`. Returns it and the GPU each of its
    GPUs stands for. `end`: every task's current end (NaN when left out)."""
    free = np.asarray(free, dtype=np.int64)
    pinned = np.asarray(pinned, dtype=np.int64)
    tasks = np.concatenate([free, pinned])
    n_free = free.size
    fleet, gpus = sub_fleet(sp.fleet, tasks, nodes, required=np.ones(tasks.size, dtype=bool))
    # pinned tasks keep their GPUs: they are their own current GPUs (no symmetry is assumed there)
    current = fleet.current.copy()
    current[n_free:] = to_sub(gpus, sp.fleet.n_gpus, assign[pinned])
    fleet = fleet.replace(current=current)
    at = np.full(sp.n_tasks, NONE, dtype=np.int64)
    at[free] = np.arange(n_free)
    lo, hi = window
    release = np.zeros(tasks.size)
    deadline = np.full(tasks.size, np.inf)
    release[:n_free] = np.maximum(sp.release[free], lo)
    deadline[:n_free] = np.minimum(sp.deadline[free], hi)
    rows = []
    for a, b in sp.pred.reshape(-1, 2).tolist():
        ia, ib = int(at[a]), int(at[b])
        if ia >= 0 and ib >= 0:
            rows.append((ia, ib))
        elif ib >= 0:  # a outside: it is placed, since b is
            release[ib] = max(release[ib], float(end[a]))
        elif ia >= 0 and assign[b, 0] >= 0:
            deadline[ia] = min(deadline[ia], float(start[b]))
    due = np.full(tasks.size, np.inf)
    due[:n_free] = sp.due[free]
    weight = np.zeros(tasks.size)
    weight[:n_free] = sp.weight[free]
    sub = sp.replace(
        fleet=fleet,
        duration_c=sp.duration_c[tasks],
        release=release,
        deadline=deadline,
        due=due,
        weight=weight,
        pred=np.array(rows, dtype=np.int64).reshape(-1, 2),
    )
    return sub, gpus


def to_sub(gpus: np.ndarray, n_gpus: int, rows: np.ndarray) -> np.ndarray:
    """Assignment rows (GPUs of the program) in the numbering of a neighbourhood with `gpus`."""
    gpu_at = np.full(n_gpus + 1, NONE, dtype=np.int64)
    gpu_at[gpus] = np.arange(gpus.size)
    return gpu_at[rows]


def from_sub(gpus: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Assignment rows of a neighbourhood with `gpus`, in the program's numbering."""
    return np.append(gpus, NONE)[rows]  # NONE (-1) picks the appended NONE


__all__ = ["from_sub", "sub_fleet", "sub_schedule", "to_sub"]

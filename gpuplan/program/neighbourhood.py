"""A neighbourhood of a fleet program: some of its tasks on the GPUs of some of its nodes.

`sub_fleet` is what a large-neighbourhood search solves exactly: every other task keeps its GPUs.
On a neighbourhood that holds every task placed on its nodes, every term of the fleet objective
but the peak utilization (a maximum) is a sum over tasks, GPUs and nodes, so the neighbourhood's
objective changes by exactly what the whole program's does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuplan.program.fleet import NONE, FleetProgram

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


def to_sub(gpus: np.ndarray, n_gpus: int, rows: np.ndarray) -> np.ndarray:
    """Assignment rows (GPUs of the program) in the numbering of a neighbourhood with `gpus`."""
    gpu_at = np.full(n_gpus + 1, NONE, dtype=np.int64)
    gpu_at[gpus] = np.arange(gpus.size)
    return gpu_at[rows]


def from_sub(gpus: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Assignment rows of a neighbourhood with `gpus`, in the program's numbering."""
    return np.append(gpus, NONE)[rows]  # NONE (-1) picks the appended NONE


__all__ = ["from_sub", "sub_fleet", "to_sub"]

"""Flexible job shop instances (Brandimarte mk01-15, Kacem k1-4) and their gpuplan problems.

Data: ``../shared/data/scheduling/fjsp/`` (see its README: `instances.json` lists each instance's
proven optimum or best-known bounds of the makespan). The mapping onto GPU work: a job is a chain of
tasks (each task `after` the one before), a machine is one GPU of its own type on its own node, and
an operation's processing time on a machine is the task's `duration_h` for that GPU's type, so a
task may run only on the machines that list it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gapdata import find_shared_data

#: An operation: its alternatives as (machine, processing time) pairs.
Operation = list[tuple[int, int]]


@dataclass(frozen=True)
class FjspInstance:
    """One flexible job shop: `jobs[j]` is the ordered list of job j's operations."""

    name: str
    machines: int
    jobs: list[list[Operation]]
    optimum: int | None = None  # proven optimal makespan, as listed
    lower: int | None = None  # best-known lower bound (the optimum when proven)
    upper: int | None = None  # best-known makespan (the optimum when proven)

    @property
    def operations(self) -> int:
        return sum(len(j) for j in self.jobs)


def fjsp_dir(override: Path | None = None) -> Path:
    """The fjsp data directory; raises DataMissingError (a FileNotFoundError) when absent."""
    return find_shared_data(override, "scheduling/fjsp", "flexible job shop data") / "scheduling" / "fjsp"


def read_fjsp(path: str | Path, name: str | None = None) -> FjspInstance:
    """Parse one instance file (format in the data README; machines numbered from 0)."""
    path = Path(path)
    first, _, rest = path.read_text(encoding="ascii").partition("\n")
    head = first.split()  # jobs, machines and, sometimes, the average flexibility (not an integer)
    n_jobs, n_machines = int(head[0]), int(head[1])
    tok = [int(x) for x in rest.split()]
    pos = 0
    jobs: list[list[Operation]] = []
    for _ in range(n_jobs):
        n_ops = tok[pos]
        pos += 1
        ops: list[Operation] = []
        for _ in range(n_ops):
            k = tok[pos]
            pairs = [(tok[pos + 1 + 2 * i], tok[pos + 2 + 2 * i]) for i in range(k)]
            if any(not 0 <= m < n_machines for m, _ in pairs):
                raise ValueError(f"{path}: machine index out of range 0..{n_machines - 1}")
            ops.append(pairs)
            pos += 1 + 2 * k
        jobs.append(ops)
    if pos != len(tok):
        raise ValueError(f"{path}: {len(tok) - pos} numbers left over after {n_jobs} jobs")
    return FjspInstance(name or path.stem, n_machines, jobs)


def load_instances(override: Path | None = None, names: list[str] | None = None) -> list[FjspInstance]:
    """Every instance listed in instances.json (or those named), with its optimum or bounds."""
    root = fjsp_dir(override)
    listed = json.loads((root / "instances.json").read_text(encoding="utf-8"))
    out = []
    for row in listed:
        if names and row["name"] not in names:
            continue
        inst = read_fjsp(root / row["path"], row["name"])
        opt = row.get("optimum")
        bounds = row.get("bounds") or {}
        out.append(
            FjspInstance(
                inst.name,
                inst.machines,
                inst.jobs,
                optimum=opt,
                lower=opt if opt is not None else bounds.get("lower"),
                upper=opt if opt is not None else bounds.get("upper"),
            )
        )
    return out


def scaled(inst: FjspInstance, k: int) -> FjspInstance:
    """k disjoint copies of the instance (copy j's machines numbered from j x machines): a program k
    times as large whose optimal makespan, and so its listed bounds, are the original's."""
    if k < 1:
        raise ValueError(f"scale must be >= 1 (got {k})")
    jobs = [
        [[(m + j * inst.machines, p) for m, p in op] for op in job] for j in range(k) for job in inst.jobs
    ]
    name = inst.name if k == 1 else f"{inst.name}x{k}"
    return FjspInstance(name, inst.machines * k, jobs, inst.optimum, inst.lower, inst.upper)


def to_problem(inst: FjspInstance, time_limit_s: float = 30.0, workers: int = 2) -> dict[str, Any]:
    """The instance as a gpuplan Problem (JSON-able dict): one GPU type and node per machine, one task
    per operation with its durations by type and `after` its job's previous operation; minimise the
    makespan (hours stand for the instance's time units)."""
    types = [{"name": f"M{m}", "memory_gb": 80} for m in range(inst.machines)]
    nodes = [{"id": f"n{m}", "gpus": [{"id": f"g{m}", "type": f"M{m}"}]} for m in range(inst.machines)]
    tasks = []
    for j, ops in enumerate(inst.jobs):
        for o, alts in enumerate(ops):
            task: dict[str, Any] = {
                "id": f"j{j}o{o}",
                "duration_h": {f"M{m}": float(p) for m, p in alts},
            }
            if o:
                task["after"] = [f"j{j}o{o - 1}"]
            tasks.append(task)
    return {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "objective": {"kind": "makespan"},
        "options": {"time_limit_s": time_limit_s, "workers": workers},
    }


__all__ = ["FjspInstance", "fjsp_dir", "load_instances", "read_fjsp", "scaled", "to_problem"]

"""Device backends: one interface (discover, read), implemented by NVML and by a simulated fleet."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol


class DeviceUnavailable(Exception):
    """No usable device backend (package or driver missing); the message says what to do."""


@dataclass(frozen=True)
class DeviceInfo:
    """A GPU as discovered: the id plans use, its UUID, model and capacities."""

    id: str
    uuid: str
    model: str
    memory_gb: float
    power_limit_w: float | None
    temperature_c: float | None
    index: int
    node: str = ""  # the cluster node it is on ("" on the executor's own machine)


@dataclass(frozen=True)
class Reading:
    """One sample of one GPU. `healthy` False means lost or erroring; `xids` are new XID codes."""

    gpu: str
    t: float
    healthy: bool
    temperature_c: float | None = None
    utilization: float | None = None
    memory_used_gb: float | None = None
    power_w: float | None = None
    ecc_errors: int | None = None
    xids: list[int] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set (a shallow copy; `dataclasses.asdict` deep-copies, and the
        executor writes one of these per GPU per sample)."""
        return {k: v for k, v in vars(self).items() if v is not None and v != []}

    def to_json(self) -> str:
        """One JSON line for the metrics file."""
        return json.dumps(self.to_dict())


class DeviceBackend(Protocol):
    """What the executor needs from devices."""

    name: str
    node: str

    def discover(self) -> list[DeviceInfo]:
        """Every GPU on this machine, in index order."""
        ...

    def read(self) -> list[Reading]:
        """One reading per discovered GPU, now."""
        ...

    def close(self) -> None:
        """Release the backend."""
        ...


def inventory(backend: DeviceBackend) -> dict[str, Any]:
    """The local fleet as a gpuplan Problem (GPU types, one node with listed GPUs, no tasks)."""
    devs = backend.discover()
    readings = {r.gpu: r for r in backend.read()}
    types: dict[str, float] = {}
    for d in devs:
        types[d.model] = max(types.get(d.model, 0.0), d.memory_gb)
    gpus = []
    for d in devs:
        r = readings.get(d.id)
        entry: dict[str, Any] = {"id": d.id, "type": d.model, "healthy": bool(r.healthy) if r else True}
        temp = r.temperature_c if r and r.temperature_c is not None else d.temperature_c
        if temp is not None:
            entry["temperature_c"] = temp
        gpus.append(entry)
    return {
        "gpu_types": [{"name": name, "memory_gb": round(mem, 3)} for name, mem in types.items()],
        "nodes": [{"id": backend.node, "gpus": gpus}],
        "tasks": [],
    }

"""A simulated fleet: GPUs from JSON whose readings and faults follow a timed script.

Time runs from `epoch` (wall clock, `time.time()`); the executor passes its run's start time, so a
restarted executor sees the same timeline (a GPU that failed at 1 s is still failed after a restart).
The state at time t folds every script event with `at_s <= t` over the GPU's initial readings.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import ValidationError

from gpuplan.errors import InputError
from gpuplan.executor.devices import DeviceInfo, Reading
from gpuplan.executor.spec import SimFleet
from gpuplan.models.json_input import parse_json
from gpuplan.models.validation import format_validation_error


class SimFleetError(InputError):
    """A sim file that does not parse or validate; `path` names the field."""


def load_sim(path: Path) -> SimFleet:
    """Read and validate a sim fleet file."""
    if not path.is_file():
        raise SimFleetError(str(path), "no such file")
    try:
        data = parse_json(path.read_bytes(), str(path))
    except InputError as exc:
        where = exc.path if exc.path == str(path) else f"{path}: {exc.path}"
        raise SimFleetError(where, exc.message) from None
    try:
        return SimFleet.model_validate(data)
    except ValidationError as exc:
        err = format_validation_error(exc)
        raise SimFleetError(f"{path}: {err.path}" if err.path else str(path), err.message) from None


class SimulatedBackend:
    """DeviceBackend over a SimFleet; readings are a pure function of wall time since `epoch`."""

    name = "simulated"

    def __init__(self, fleet: SimFleet, epoch: float | None = None) -> None:
        self.fleet = fleet
        self.node = fleet.node
        self.epoch = time.time() if epoch is None else epoch
        self._script = sorted(fleet.script, key=lambda e: e.at_s)
        self._xid_seen: dict[str, int] = {}

    def discover(self) -> list[DeviceInfo]:
        """The fleet's GPUs, in file order."""
        return [
            DeviceInfo(
                id=g.id,
                uuid=g.uuid,
                model=g.model,
                memory_gb=g.memory_gb,
                power_limit_w=g.power_limit_w,
                temperature_c=g.temperature_c,
                index=k,
            )
            for k, g in enumerate(self.fleet.gpus)
        ]

    def read(self) -> list[Reading]:
        """Every GPU's state now: initial values, then the script up to now."""
        now = time.time()
        elapsed = now - self.epoch
        state = {
            g.id: {
                "temperature_c": g.temperature_c,
                "utilization": g.utilization,
                "memory_used_gb": g.memory_used_gb,
                "power_w": g.power_w,
                "ecc_errors": 0,
                "failed": False,
                "xids": [],
            }
            for g in self.fleet.gpus
        }
        for k, e in enumerate(self._script):
            if e.at_s > elapsed:
                break
            s = state[e.gpu]
            for key in ("temperature_c", "utilization", "memory_used_gb", "power_w", "ecc_errors"):
                value = getattr(e, key)
                if value is not None:
                    s[key] = value
            if e.fail is not None:
                s["failed"] = e.fail
            if e.xid is not None and self._xid_seen.get(f"{e.gpu}#{k}") is None:
                self._xid_seen[f"{e.gpu}#{k}"] = e.xid
                s["xids"].append(e.xid)
        out = []
        for g in self.fleet.gpus:
            s = state[g.id]
            if s["failed"]:
                out.append(Reading(gpu=g.id, t=now, healthy=False, error="GPU is lost (simulated)"))
                continue
            out.append(
                Reading(
                    gpu=g.id,
                    t=now,
                    healthy=True,
                    temperature_c=s["temperature_c"],
                    utilization=s["utilization"],
                    memory_used_gb=s["memory_used_gb"],
                    power_w=s["power_w"],
                    ecc_errors=s["ecc_errors"],
                    xids=list(s["xids"]),
                )
            )
        return out

    def close(self) -> None:
        """Nothing to release."""

"""Choose the device backend: the simulated fleet for a sim JSON path, else NVML on this machine.

Kept apart from `devices` (the interface both backends implement), so the interface imports neither.
"""

from __future__ import annotations

from pathlib import Path

from gpuplan.executor.devices import DeviceBackend


def load_backend(devices: str | None, epoch: float | None = None) -> DeviceBackend:
    """The simulated backend for a sim JSON path, else NVML. Raises DeviceUnavailable."""
    if devices:
        from gpuplan.executor.sim import SimulatedBackend, load_sim

        return SimulatedBackend(load_sim(Path(devices)), epoch=epoch)
    from gpuplan.executor.nvml import NvmlBackend

    return NvmlBackend()


__all__ = ["load_backend"]

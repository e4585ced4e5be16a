"""NVML device backend (the `nvidia-ml-py` package, module `pynvml`), imported lazily.

GPU ids are device UUIDs, so `gpuplan inventory > fleet.json` gives plans whose GPU ids are stable
across reboots and index changes. Health: a GPU whose queries fail with an NVML error (GPU lost,
reset required, ...) is unhealthy; uncorrected volatile ECC errors and XID critical error events are
reported in the readings and judged by the monitor.
"""

from __future__ import annotations

import importlib
import socket
import time
from typing import Any

from gpuplan.executor.devices import DeviceInfo, DeviceUnavailable, Reading

INSTALL_HINT = "pip install 'gpuplan[nvml]'"
NO_DRIVER_HINT = "no NVIDIA driver on this machine; pass --devices sim.json for a simulated fleet"

#: NVML error codes that mean "no driver here" rather than "a GPU misbehaves".
_NO_DRIVER_CODES = {9, 12, 18}  # DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, LIB_RM_VERSION_MISMATCH


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise DeviceUnavailable(f"the NVML backend needs the nvidia-ml-py package: {INSTALL_HINT}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """DeviceBackend over NVML. Raises DeviceUnavailable when the package or the driver is missing."""

    name = "nvml"

    def __init__(self) -> None:
        self.nv = _import_pynvml()
        try:
            self.nv.nvmlInit()
        except self.nv.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in _NO_DRIVER_CODES:
                raise DeviceUnavailable(f"{NO_DRIVER_HINT} (NVML: {exc})") from exc
            raise DeviceUnavailable(f"NVML failed to initialize: {exc}") from exc
        self.node = socket.gethostname()
        self._handles: list[tuple[str, Any]] = []
        self._events: Any = None
        self._devices: list[DeviceInfo] | None = None

    def _optional(self, fn: Any, *args: Any) -> Any:
        """fn(*args), or None when the query is not supported on this GPU."""
        try:
            return fn(*args)
        except self.nv.NVMLError_NotSupported:
            return None

    def discover(self) -> list[DeviceInfo]:
        """Every GPU NVML sees: UUID (also the id), name, memory, power limit, temperature."""
        if self._devices is not None:
            return self._devices
        nv = self.nv
        out: list[DeviceInfo] = []
        for index in range(nv.nvmlDeviceGetCount()):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(nv.nvmlDeviceGetUUID(handle))
                memory = nv.nvmlDeviceGetMemoryInfo(handle)
                limit_mw = self._optional(nv.nvmlDeviceGetPowerManagementLimit, handle)
                temp = self._optional(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
            except nv.NVMLError as exc:
                raise DeviceUnavailable(
                    f"GPU {index} cannot be queried (NVML: {exc}); check nvidia-smi"
                ) from exc
            out.append(
                DeviceInfo(
                    id=uuid,
                    uuid=uuid,
                    model=_text(nv.nvmlDeviceGetName(handle)),
                    memory_gb=round(memory.total / 2**30, 1),
                    power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
                    temperature_c=None if temp is None else float(temp),
                    index=index,
                )
            )
            self._handles.append((uuid, handle))
        self._register_xid_events()
        self._devices = out
        return out

    def _register_xid_events(self) -> None:
        """Listen for XID critical errors where the driver supports events (not on every GPU/OS)."""
        nv = self.nv
        try:
            self._events = nv.nvmlEventSetCreate()
        except nv.NVMLError:
            self._events = None
            return
        for _, handle in self._handles:
            try:
                nv.nvmlDeviceRegisterEvents(handle, nv.nvmlEventTypeXidCriticalError, self._events)
            except nv.NVMLError:
                continue

    def _drain_xids(self) -> dict[str, list[int]]:
        """XID codes that arrived since the last read, by GPU UUID."""
        nv = self.nv
        out: dict[str, list[int]] = {}
        if self._events is None:
            return out
        while True:
            try:
                data = nv.nvmlEventSetWait(self._events, 0)
            except nv.NVMLError_Timeout:
                return out
            except nv.NVMLError:
                return out
            if data.eventType & nv.nvmlEventTypeXidCriticalError:
                try:
                    uuid = _text(nv.nvmlDeviceGetUUID(data.device))
                except nv.NVMLError:
                    continue
                out.setdefault(uuid, []).append(int(data.eventData))

    def read(self) -> list[Reading]:
        """Utilization, memory used, power, temperature, uncorrected ECC count and new XIDs per GPU."""
        nv = self.nv
        if self._devices is None:
            self.discover()
        xids = self._drain_xids()
        out = []
        for uuid, handle in self._handles:
            now = time.time()
            try:
                temp = self._optional(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
                util = self._optional(nv.nvmlDeviceGetUtilizationRates, handle)
                memory = nv.nvmlDeviceGetMemoryInfo(handle)
                power_mw = self._optional(nv.nvmlDeviceGetPowerUsage, handle)
                ecc = self._optional(
                    nv.nvmlDeviceGetTotalEccErrors,
                    handle,
                    nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                    nv.NVML_VOLATILE_ECC,
                )
            except nv.NVMLError as exc:
                out.append(Reading(gpu=uuid, t=now, healthy=False, error=f"NVML: {exc}"))
                continue
            out.append(
                Reading(
                    gpu=uuid,
                    t=now,
                    healthy=True,
                    temperature_c=None if temp is None else float(temp),
                    utilization=None if util is None else float(util.gpu),
                    memory_used_gb=round(memory.used / 2**30, 3),
                    power_w=None if power_mw is None else power_mw / 1000.0,
                    ecc_errors=None if ecc is None else int(ecc),
                    xids=xids.get(uuid, []),
                )
            )
        return out

    def close(self) -> None:
        """Free the event set and shut NVML down."""
        nv = self.nv
        try:
            if self._events is not None:
                nv.nvmlEventSetFree(self._events)
            nv.nvmlShutdown()
        except nv.NVMLError:
            pass

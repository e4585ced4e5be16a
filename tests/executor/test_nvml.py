"""NVML backend against a stand-in `pynvml` module (same function names and error classes)."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from gpuplan.executor.devices import DeviceUnavailable, inventory
from gpuplan.executor.nvml import NvmlBackend
from gpuplan.models import Problem


def fake_pynvml(*, init_error: int | None = None, lost: set[int] | None = None) -> types.ModuleType:
    """A pynvml look-alike: two H100s; GPU indices in `lost` fail every query with GPU_IS_LOST."""
    nv = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return {12: "NVML Shared Library Not Found", 15: "GPU is lost", 9: "Driver Not Loaded"}.get(
                self.value, f"error {self.value}"
            )

    class NVMLError_NotSupported(NVMLError):
        def __init__(self) -> None:
            super().__init__(3)

    class NVMLError_Timeout(NVMLError):
        def __init__(self) -> None:
            super().__init__(10)

    nv.NVMLError, nv.NVMLError_NotSupported, nv.NVMLError_Timeout = (
        NVMLError,
        NVMLError_NotSupported,
        NVMLError_Timeout,
    )
    nv.NVML_TEMPERATURE_GPU = 0
    nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    nv.NVML_VOLATILE_ECC = 0
    nv.nvmlEventTypeXidCriticalError = 0x8
    lost = set() if lost is None else lost
    events = [types.SimpleNamespace(device=1, eventType=0x8, eventData=79)]
    calls: list[str] = []
    nv.calls = calls

    def check(h: int) -> None:
        if h in lost:
            raise NVMLError(15)

    def init() -> None:
        calls.append("nvmlInit")
        if init_error is not None:
            raise NVMLError(init_error)

    def ecc(h: int, kind: int, counter: int) -> int:
        check(h)
        assert (kind, counter) == (1, 0)
        if h == 1:
            raise NVMLError_NotSupported()
        return 2

    def wait(event_set: Any, timeout_ms: int) -> Any:
        assert timeout_ms == 0
        if events:
            return events.pop()
        raise NVMLError_Timeout()

    def checked(fn: Any) -> Any:
        def call(h: int, *args: Any) -> Any:
            check(h)
            return fn(h, *args)

        return call

    nv.nvmlInit = init
    nv.nvmlShutdown = lambda: calls.append("nvmlShutdown")
    nv.nvmlDeviceGetCount = lambda: 2
    nv.nvmlDeviceGetHandleByIndex = lambda i: i
    nv.nvmlDeviceGetUUID = lambda h: f"GPU-fake-{h}".encode()  # older pynvml returns bytes
    nv.nvmlDeviceGetName = lambda h: "NVIDIA H100 80GB HBM3"
    nv.nvmlDeviceGetMemoryInfo = checked(
        lambda h: types.SimpleNamespace(total=80 * 2**30, used=(h + 1) * 2**30)
    )
    nv.nvmlDeviceGetPowerManagementLimit = lambda h: 700_000
    nv.nvmlDeviceGetTemperature = checked(lambda h, sensor: 40 + h)
    nv.nvmlDeviceGetUtilizationRates = checked(lambda h: types.SimpleNamespace(gpu=50 + h, memory=10))
    nv.nvmlDeviceGetPowerUsage = checked(lambda h: 300_500)
    nv.nvmlDeviceGetTotalEccErrors = ecc
    nv.nvmlEventSetCreate = lambda: "event-set"
    nv.nvmlDeviceRegisterEvents = lambda h, types_, es: calls.append(f"register {h}")
    nv.nvmlEventSetWait = wait
    nv.nvmlEventSetFree = lambda es: calls.append("free")
    return nv


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(
        DeviceUnavailable, match=r"needs the nvidia-ml-py package: pip install 'gpuplan\[nvml\]'"
    ):
        NvmlBackend()


def test_missing_driver_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=12))
    with pytest.raises(
        DeviceUnavailable, match=r"no NVIDIA driver on this machine.*NVML Shared Library Not Found"
    ):
        NvmlBackend()


def test_inventory_without_driver_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gpuplan.cli import main

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=9))
    assert main(["inventory"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpuplan: error: --devices: no NVIDIA driver") and "\n" not in err


def test_discover_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    b = NvmlBackend()
    devs = b.discover()
    assert [(d.id, d.uuid, d.model, d.memory_gb, d.power_limit_w, d.temperature_c) for d in devs] == [
        ("GPU-fake-0", "GPU-fake-0", "NVIDIA H100 80GB HBM3", 80.0, 700.0, 40.0),
        ("GPU-fake-1", "GPU-fake-1", "NVIDIA H100 80GB HBM3", 80.0, 700.0, 41.0),
    ]
    r0, r1 = b.read()
    assert (r0.healthy, r0.utilization, r0.memory_used_gb, r0.power_w, r0.temperature_c) == (
        True,
        50.0,
        1.0,
        300.5,
        40.0,
    )
    assert r0.ecc_errors == 2 and r0.xids == []
    assert r1.ecc_errors is None and r1.xids == [79]  # ECC not supported there; the XID event arrived
    assert b.read()[1].xids == []  # events are drained once
    b.close()
    assert nv.calls[0] == "nvmlInit" and nv.calls[-1] == "nvmlShutdown"


def test_lost_gpu_reads_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    lost: set[int] = set()
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(lost=lost))
    b = NvmlBackend()
    b.discover()
    lost.add(1)  # falls off the bus after discovery
    r0, r1 = b.read()
    assert r0.healthy and not r1.healthy and r1.error == "NVML: GPU is lost"


def test_gpu_lost_at_discovery_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(lost={1}))
    with pytest.raises(DeviceUnavailable, match=r"GPU 1 cannot be queried \(NVML: GPU is lost\)"):
        NvmlBackend().discover()


def test_inventory_is_a_valid_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    inv = inventory(NvmlBackend())
    problem = Problem.model_validate(json.loads(json.dumps(inv)))
    assert [g.id for _, g in problem.all_gpus()] == ["GPU-fake-0", "GPU-fake-1"]
    assert problem.gpu_types[0].name == "NVIDIA H100 80GB HBM3" and problem.tasks == []

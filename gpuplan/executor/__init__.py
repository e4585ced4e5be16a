"""Apply a plan on this machine, watch the GPUs, and re-plan when a GPU fails or overheats.

Pieces: `devices` (backend interface; `nvml` and `sim` implementations), `journal` (SQLite WAL
state), `launcher` and `_wrapper` (attempt processes), `replan` (the unfinished work as a Problem),
`runner` (the Executor loop). Its commands (`gpuplan run | status | stop | inventory`) live in
`gpuplan.cli.executor`. See docs/executor.md.
"""

from gpuplan.executor.devices import (
    DeviceBackend,
    DeviceInfo,
    DeviceUnavailable,
    Reading,
    inventory,
    load_backend,
)
from gpuplan.executor.runner import Executor, ExecutorInputError, RunResult, status
from gpuplan.executor.spec import RunSpec, Settings, SimFleet, TaskRun

__all__ = [
    "DeviceBackend",
    "DeviceInfo",
    "DeviceUnavailable",
    "Executor",
    "ExecutorInputError",
    "Reading",
    "RunResult",
    "RunSpec",
    "Settings",
    "SimFleet",
    "TaskRun",
    "inventory",
    "load_backend",
    "status",
]

"""Apply a plan on this machine or across a Ray cluster, watch the GPUs, and re-plan when a GPU fails
or overheats.

Pieces: `devices` (backend interface; `nvml` and `sim` implementations), `journal` (SQLite WAL
state), `launcher` and `_wrapper` (the spawner and attempt processes), `sites` (where attempts run:
this machine, or a node's agent), `agent` and `raycluster` (one agent per node of a Ray cluster; Ray
imported only there), `replan` (the unfinished work as a Problem),
`runner` (the Executor loop) with its parts `state`, `recovery`, `scheduling`, `lifecycle`, `health`
and `replanning`, and `queries` (status and stop from outside a run). The commands
(`gpuplan run | status | stop | inventory`) live in `gpuplan.cli.executor`. See docs/executor.md.
"""

from gpuplan.executor.backends import load_backend
from gpuplan.executor.devices import (
    DeviceBackend,
    DeviceInfo,
    DeviceUnavailable,
    Reading,
    inventory,
)
from gpuplan.executor.queries import status
from gpuplan.executor.runner import Executor
from gpuplan.executor.spec import RunSpec, Settings, SimFleet, TaskRun
from gpuplan.executor.state import ExecutorInputError, RunResult

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

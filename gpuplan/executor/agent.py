"""The node agent: the executor's hands on one node of a cluster.

One agent per node (a Ray actor pinned to it, see `raycluster`) launches and stops the node's task
processes with the local launcher (a fenced spawner: a wrapper whose agent is gone kills its task,
since the head will run it elsewhere), reads the node's GPUs (NVML, or a simulated fleet) and answers
the head's batched requests. It decides nothing and keeps no state beyond the wrapper files: the
head keeps the journal, decides and re-plans. Plain Python (no Ray import), so it is tested as is.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from gpuplan.executor.devices import DeviceBackend, DeviceInfo, Reading
from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sites import LocalSite, Outcome, Probe


def _proc_usage(pid: int) -> dict[str, float] | None:
    """CPU seconds (user + system) and resident memory (MB) of a process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return {"cpu_s": round((int(stat[11]) + int(stat[12])) / ticks, 3), "rss_mb": round(rss_kb / 1024, 1)}


def _ray_node_id() -> str | None:
    """The Ray node this process runs on, when it is a Ray worker (else None)."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


class _NoGpus:
    """The devices of a simulated node given no GPUs (a CPU-only node)."""

    name = "simulated"

    def __init__(self, node: str) -> None:
        self.node = node

    def discover(self) -> list[DeviceInfo]:
        return []

    def read(self) -> list[Reading]:
        return []

    def close(self) -> None:
        """Nothing to release."""


class NodeAgent:
    """A node's agent: `node` is the plan's node id, `fleet` a simulated fleet (its JSON) or None for
    NVML, `epoch` the run's start (the simulated clock), `root` the node's directory for the
    spawner's log."""

    def __init__(self, node: str, fleet: dict[str, Any] | None, epoch: float | None, root: str) -> None:
        self.node = node
        self.backend: DeviceBackend
        if fleet is not None and not fleet.get("gpus"):
            self.backend = _NoGpus(node)
        elif fleet is not None:
            from gpuplan.executor.sim import SimulatedBackend
            from gpuplan.executor.spec import SimFleet

            self.backend = SimulatedBackend(SimFleet.model_validate({**fleet, "node": node}), epoch=epoch)
        else:
            from gpuplan.executor.nvml import NvmlBackend

            self.backend = NvmlBackend()
        self.site = LocalSite(node, spawner_log=Path(root) / "spawner.log", fence=True)
        self.env = {"GPUPLAN_NODE": node}
        ray_node = _ray_node_id()
        if ray_node:
            self.env["GPUPLAN_RAY_NODE_ID"] = ray_node

    def hello(self) -> dict[str, Any]:
        """Who and where this agent is, and the node's GPUs (ids, UUIDs, models, memory)."""
        return {
            "node": self.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "devices": [{**asdict(d), "node": self.node} for d in self.backend.discover()],
        }

    def read(self) -> list[Reading]:
        """One reading per GPU of the node, now."""
        return self.backend.read()

    def spawn(self, requests: list[LaunchRequest]) -> list[int | str]:
        """Start one wrapper per request (pid, or why not); each task also gets GPUPLAN_NODE (the plan's
        node id) and GPUPLAN_RAY_NODE_ID (where Ray placed this agent)."""
        return self.site.spawn([replace(r, env={**r.env, **self.env}) for r in requests])()

    def poll(self, probes: list[Probe]) -> list[Outcome]:
        """(ended, exit code) per attempt, from the wrapper files on this node."""
        return self.site.poll(probes)()

    def signal(self, pids: list[int], sig: int) -> None:
        """`sig` to each wrapper's process group."""
        self.site.signal(pids, sig)

    def cancel_if_unclaimed(self, dirs: list[str]) -> list[bool]:
        """Claim attempts for cancellation (True: never ran, never will)."""
        return self.site.cancel_if_unclaimed(dirs)

    def files(self, dirs: list[str]) -> list[dict[str, Any]]:
        """The claim and exit records of attempts."""
        return self.site.files(dirs)

    def alive(self, probes: list[Probe]) -> list[bool]:
        """Whether each attempt's wrapper is alive."""
        return self.site.alive(probes)

    def usage(self) -> dict[str, Any]:
        """CPU and memory of this agent and of its spawner (for measurements)."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        spawner = self.site.spawner._proc
        return {
            "t": time.time(),
            "agent": _proc_usage(os.getpid())
            or {"cpu_s": own.ru_utime + own.ru_stime, "rss_mb": own.ru_maxrss / 1024},
            "spawner": _proc_usage(spawner.pid) if spawner is not None else None,
        }

    def stop(self) -> None:
        """End the spawner (its fenced wrappers kill their tasks) and release the devices."""
        self.site.close()
        self.backend.close()


__all__ = ["NodeAgent"]

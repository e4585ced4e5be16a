"""The node agent: the executor's hands on one node of a cluster.

One agent per node (a Ray actor pinned to it, see `raycluster`) launches and stops the node's task
processes with the local launcher (a fenced spawner: a wrapper whose agent is gone kills its task,
since the head will run it elsewhere), reads the node's GPUs (NVML, or a simulated fleet) and answers
the head's batched requests. It decides nothing and keeps no state beyond the wrapper files: the
head keeps the journal, decides and re-plans. Plain Python (no Ray import), so it is tested as is.

Ends come to the head by `watch`, a call that returns as soon as an attempt of the node has ended
(or after its timeout), so the head need not ask every node every loop turn (a round trip per node
per turn: with many nodes, most of the head's work). The agent learns of ends on its own node: each
wrapper it starts announces its end by a file in the agent's `ended` directory (`sites`, *Announced
ends*), which the agent lists when one appears (`doorbell`: it sleeps meanwhile; without inotify it
lists it every `WATCH_STEP_S`: one directory read, however many attempts run), and it checks its
wrappers' life every `ALIVE_CHECK_S`, all at once (a wrapper killed announces nothing).
`watch` runs beside the other calls (the actor takes a few calls at once); the attempts it watches
(`_live`) are those this agent spawned and those the head polled and found running.

Readings come to the head the same way: asked to, a watch also samples the node's GPUs every
`sample_s` seconds and returns them with the ends, so the head makes one call per node per watch
rather than one more per node per sample. A watch returns at once, with what it has, when a reading
may change the head's judgement of its GPU (`Heat` and `Watched.alert`); the head judges.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gpuplan.executor.devices import DeviceBackend, DeviceInfo, Reading
from gpuplan.executor.doorbell import Doorbell
from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sites import ALIVE_CHECK_S, LocalSite, Outcome, Probe, poll_files

#: Seconds between an agent's looks at its announced ends while the head waits on `watch`, where the
#: agent cannot sleep until one appears (`Doorbell` without inotify).
WATCH_STEP_S = 0.05
#: The calls an agent answers, as a number the head checks (`hello`): raised whenever a call's
#: arguments or answer change, since agents outlive the head that started them (2: `watch` samples).
PROTOCOL = 2


@dataclass(frozen=True)
class Heat:
    """The head's temperature thresholds: a GPU over `hot_above_c` counts as overheated, and one
    that was is used again at `cool_at_c` or under. The agent only sorts readings by them."""

    hot_above_c: float
    cool_at_c: float

    def zone(self, temperature_c: float | None) -> int:
        """0 cool (or unknown), 1 between the thresholds, 2 hot."""
        if temperature_c is None or temperature_c <= self.cool_at_c:
            return 0
        return 2 if temperature_c > self.hot_above_c else 1


@dataclass
class Watched:
    """What a `watch` saw: the attempts that ended (dir, exit code: None when the wrapper vanished
    without one), the readings it took in order, whether one of them was an alert (it returned
    early for it), and why the devices could not be read (None when they could)."""

    ended: list[tuple[str, int | None]] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    alert: bool = False
    error: str | None = None


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
        self.ended = Path(root) / "ended"  # the wrappers' announced ends (module docstring)
        self.site = LocalSite(node, spawner_log=Path(root) / "spawner.log", fence=True, ended=self.ended)
        self.env = {"GPUPLAN_NODE": node}
        self._lock = threading.Lock()
        # attempt dir -> (its wrapper's pid, when its life was last checked), for those not reported ended
        self._live: dict[str, tuple[int, float]] = {}
        self._dir_of: dict[str, str] = {}  # announcement file name -> attempt dir, for those in _live
        self._next_sample = 0.0  # when a watch that samples next reads the devices (monotonic)
        self._last_key: dict[str, tuple[bool, int | None, int]] = {}  # GPU -> its last reading's key
        ray_node = _ray_node_id()
        if ray_node:
            self.env["GPUPLAN_RAY_NODE_ID"] = ray_node
        with Doorbell(self.ended, WATCH_STEP_S) as bell:  # can this node's watch sleep between ends?
            self.no_doorbell = bell.why_not

    def hello(self) -> dict[str, Any]:
        """Who and where this agent is, the calls it answers (`PROTOCOL`), the node's GPUs (ids,
        UUIDs, models, memory), and why its watch must look for ends every `WATCH_STEP_S` (None
        when it sleeps until one is announced)."""
        return {
            "no_doorbell": self.no_doorbell,
            "protocol": PROTOCOL,
            "node": self.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "devices": [{**asdict(d), "node": self.node} for d in self.backend.discover()],
        }

    def read(self) -> list[Reading]:
        """One reading per GPU of the node, now."""
        return self.backend.read()

    def _track(self, attempt_dir: str, pid: int, checked: float) -> None:
        """Watch an attempt (under the lock)."""
        self._live[attempt_dir] = (pid, checked)
        self._dir_of[self.site.name(attempt_dir)] = attempt_dir

    def _untrack(self, attempt_dirs: list[str]) -> None:
        """Stop watching attempts reported ended, and remove their announcements (under the lock)."""
        for d in attempt_dirs:
            self._live.pop(d, None)
            self._dir_of.pop(self.site.name(d), None)
        self.site.taken(attempt_dirs)

    def spawn(self, requests: list[LaunchRequest]) -> list[int | str]:
        """Start one wrapper per request (pid, or why not); each task also gets GPUPLAN_NODE (the plan's
        node id) and GPUPLAN_RAY_NODE_ID (where Ray placed this agent), and each wrapper announces its
        end in `ended`."""
        ready = [replace(r, env={**r.env, **self.env}) for r in requests]
        pids = self.site.spawn(ready)()
        now = time.monotonic()
        with self._lock:
            for r, pid in zip(requests, pids, strict=True):
                if isinstance(pid, int):
                    self._track(r.dir, pid, now)
        return pids

    def poll(self, probes: list[Probe]) -> list[Outcome]:
        """(ended, exit code) per attempt, from the wrapper files on this node (every one read: the
        watch may have taken an announcement); the attempts still running are watched from now on."""
        out = self.site.poll(probes, fresh=True)()
        now = time.monotonic()
        with self._lock:
            self._untrack([p.dir for p, (ended, _) in zip(probes, out, strict=True) if ended])
            for p, (ended, _) in zip(probes, out, strict=True):
                if not ended and p.pid is not None:
                    checked = now if p.check_alive else self._live.get(p.dir, (p.pid, now))[1]
                    self._track(p.dir, p.pid, checked)
        return out

    def watch(self, timeout_s: float, sample_s: float | None = None, heat: Heat | None = None) -> Watched:
        """Wait until attempts of this node end, at most `timeout_s` seconds; those that ended (no
        longer watched), and with `sample_s` the readings of the node's GPUs taken every `sample_s`
        seconds meanwhile. Returns at once when an attempt ends or a reading is an alert
        (`_alerts`); else, at the timeout, with no ends.

        Between looks it sleeps until an end is announced (a `Doorbell` on `ended`; without
        inotify it looks every `WATCH_STEP_S`), the next sample, or the next life check, and at
        most `ALIVE_CHECK_S / 2` (attempts spawned meanwhile are checked in time). A look
        reads the exit files of the attempts whose end was announced and, when the oldest life
        check is due (`ALIVE_CHECK_S` since it was made, or since the wrapper's start: a wrapper
        just forked has not claimed its attempt yet), those of every attempt checked at least half
        that long ago: the checks fall due together, one wake-up for all of them."""
        end = time.monotonic() + timeout_s
        out = Watched()
        with Doorbell(self.ended, WATCH_STEP_S) as bell:
            while True:
                bell.clear()
                now = time.monotonic()
                announced = self.site.announced()
                with self._lock:
                    look = {self._dir_of[n] for n in announced if n in self._dir_of}
                    oldest = min((c for _, c in self._live.values()), default=now)
                    due: set[str] = set()
                    if now - oldest >= ALIVE_CHECK_S:
                        due = {d for d, (_, c) in self._live.items() if now - c >= ALIVE_CHECK_S / 2}
                    for d in due:
                        self._live[d] = (self._live[d][0], now)
                    probes = [Probe(d, self._live[d][0], d in due) for d in look | due]
                    sample = sample_s is not None and now >= self._next_sample
                    if sample and sample_s is not None:  # the next one an interval on (from now, if late)
                        late = self._next_sample + sample_s <= now
                        self._next_sample = (now if late else self._next_sample) + sample_s
                    checks = min((c for _, c in self._live.values()), default=None)
                if sample:
                    self._sample(out, heat)
                outcomes = poll_files(probes)
                out.ended = [(p.dir, rc) for p, (done, rc) in zip(probes, outcomes, strict=True) if done]
                if out.ended:
                    with self._lock:
                        self._untrack([d for d, _ in out.ended])
                if out.ended or out.alert or out.error or now >= end:
                    return out
                wake = end if sample_s is None else min(end, self._next_sample)
                if checks is not None:
                    wake = min(wake, checks + ALIVE_CHECK_S)
                # at most half a check interval: an attempt spawned meanwhile gets its first check late
                # by no more than that
                bell.wait(min(wake - time.monotonic(), ALIVE_CHECK_S / 2))

    def _sample(self, out: Watched, heat: Heat | None) -> None:
        """Read the devices into `out` (a failed read: its error), noting whether any reading is an
        alert."""
        try:
            batch = self.backend.read()
        except Exception as exc:  # NVML failing as a whole: the head logs it (not a GPU fault)
            out.error = f"{type(exc).__name__}: {exc}"
            return
        out.readings.extend(batch)
        with self._lock:
            if self._alerts(batch, heat):
                out.alert = True

    def _alerts(self, batch: list[Reading], heat: Heat | None) -> bool:
        """Whether a reading may change the head's judgement of its GPU, so it must not wait for
        the watch's timeout: it reports new XIDs, or its health, uncorrected ECC count or heat zone
        differs from the GPU's reading before (the first reading of a GPU: from a healthy, cool
        GPU's). Under the lock."""
        alert = False
        for r in batch:
            key = (r.healthy, r.ecc_errors, heat.zone(r.temperature_c) if heat is not None else 0)
            before = self._last_key.get(r.gpu, (True, r.ecc_errors, 0))
            self._last_key[r.gpu] = key
            alert = alert or bool(r.xids) or key != before
        return alert

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


__all__ = ["PROTOCOL", "Heat", "NodeAgent", "Watched"]

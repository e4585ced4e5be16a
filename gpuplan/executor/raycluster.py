"""Run a plan across the nodes of a Ray cluster: node mapping, one agent per node, the head's view.

The executor (the head: journal, decisions, re-plans) stays one process; each node gets a
`NodeAgent` (a Ray actor pinned to the node by node affinity, with no CPU or GPU reserved, so Ray
never sets CUDA_VISIBLE_DEVICES: the plan does). `RayFleet` is the head's device backend (every
node's GPUs) and gives one `RaySite` per node (launch, poll, signal in batches).

**Readings** ride with the agents' watches (`RayFleet.monitor`): each agent samples its GPUs at the
head's sample interval and returns them with its next watch, at once when one may change the head's
judgement (a fault, or heat crossing a threshold: `RayFleet.urgent` then asks the head to sample now).
So the head makes one call per node per watch, not one more per node per sample. A node's first
sample, before its first watch returns, is read directly.

**Node ids.** A Ray node is the plan's node `X` when it has the custom resource `gpuplan-node:X`
(e.g. `ray start --resources '{"gpuplan-node:X": 1}'`); a node without one is named by its host
name. Two nodes with one name are refused. The mapping is checked before anything starts.

**Agents** are detached actors named `gpuplan-agent-<run>-<node>` in the namespace `gpuplan`, so
they outlive a killed head and a restarted head finds them again (and with them the attempts they
watch); the head ends them when the run finishes or is stopped. An agent that dies, or a node that
leaves, makes its GPUs read as failed, so the executor moves their tasks as for any failed GPU.

Ray is imported only here, and only when `--ray` is used (`pip install 'gpuplan[ray]'`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuplan.executor.agent import PROTOCOL, WATCH_STEP_S, Heat, NodeAgent, Watched
from gpuplan.executor.devices import DeviceInfo, DeviceUnavailable, Reading
from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sites import Outcome, Probe

log = logging.getLogger("gpuplan")

NAMESPACE = "gpuplan"
NODE_RESOURCE = "gpuplan-node:"
INSTALL_HINT = "pip install 'gpuplan[ray]'"
#: Environment given to agents (and so to the task processes they start): Ray must not pick GPUs, and
#: must not lower the agent's CPU priority (Ray starts its workers at niceness 15, which the spawner,
#: the wrappers and every task would inherit: tasks would run behind everything else on the node, and
#: each launch would wait for a core behind them).
AGENT_ENV = {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1", "RAY_worker_niceness": "0"}
#: Seconds to reach the cluster before giving up with a one-line error.
CONNECT_TIMEOUT_S = 20.0
#: Seconds a request to an agent may take; an agent silent this long counts as lost.
CALL_TIMEOUT_S = 10.0
#: Seconds an agent's `watch` waits when nothing ends on its node (then the head asks again).
WATCH_S = 1.0
#: Calls an agent takes at once: a `watch` waiting beside the head's other requests.
AGENT_CONCURRENCY = 4


class ClusterUnavailable(DeviceUnavailable):
    """No Ray package, no cluster at the address, or a cluster that cannot run this plan."""


class NodeReadFailed(RuntimeError):
    """Agents could not read their node's devices at all (the head logs it; not a GPU fault)."""


def import_ray() -> Any:
    """The `ray` module, or ClusterUnavailable saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterUnavailable(f"Ray is not installed: {INSTALL_HINT}") from exc
    return ray


def connect(address: str) -> Any:
    """Connect to the cluster at `address` (`auto`: the one this machine belongs to) as a driver."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ClusterUnavailable(f"{address!r} is not a Ray address (HOST:PORT or auto)")
        try:  # fail fast: ray.init retries an unreachable address for a long time
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S / 4).close()
        except OSError as exc:
            raise ClusterUnavailable(f"no Ray cluster at {address} ({exc})") from None
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception as exc:
        raise ClusterUnavailable(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    return ray


def node_ids(ray: Any) -> dict[str, dict[str, Any]]:
    """Plan node id -> the alive Ray node (its `ray.nodes()` entry), by the module's rule."""
    out: dict[str, dict[str, Any]] = {}
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        named = [r[len(NODE_RESOURCE) :] for r in n.get("Resources", {}) if r.startswith(NODE_RESOURCE)]
        name = named[0] if named else n.get("NodeManagerHostname", "")
        if name in out:
            raise ClusterUnavailable(
                f"two Ray nodes are named {name!r}; give each a resource {NODE_RESOURCE}<id>"
            )
        out[name] = n
    return out


def _agent_class(ray: Any) -> Any:
    return ray.remote(NodeAgent)


def _lost(exc: BaseException, ray: Any) -> bool:
    """Whether an error from an agent call means the agent (or its node) is gone."""
    errors = tuple(
        getattr(ray.exceptions, name)
        for name in ("RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError")
        if hasattr(ray.exceptions, name)
    )
    return isinstance(exc, errors)


class _Watches:
    """Every agent's outstanding `watch` call, looked at with one `ray.wait` for all nodes rather
    than one per node: the head's loop asks about each node every turn, and a sweep answers the
    turn's asks within `SWEEP_S` of it (a watch that returns just after is taken on the next turn)."""

    SWEEP_S = 0.005

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.out: dict[str, Any] = {}  # node -> its agent's outstanding watch
        self.urgent = False  # a watch returned an alert not yet sampled by the head
        self._ready: set[Any] = set()
        self._swept = -math.inf

    def ready(self, ref: Any) -> bool:
        """Whether the watch `ref` has returned (as of the last sweep, taken anew when stale)."""
        now = time.monotonic()
        if now - self._swept > self.SWEEP_S:
            refs = list(self.out.values())
            self._ready = set(self.ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
            self._swept = now
        return ref in self._ready


class RaySite:
    """A node's agent seen as a site: every call is one round trip; a failed one marks it lost.

    Polls are answered from the agent's reports where they can be: while the attempts asked about
    are all watched by the agent (spawned through it, or found running by an earlier poll) and its
    `watch` call has not returned, none of them has ended (the agent looks at its `ended`
    directory as ends are announced, checks wrappers' life every second, and would have answered),
    so the answer costs no round trip; when the watch returns, its ends are kept until polled and a new
    watch is sent. A poll about other attempts, or a fresh one, asks the agent. With `sample_s` set
    (`RayFleet.monitor`), a watch is kept outstanding even with no attempts, and its readings are
    kept until the head's next sample (`take_readings`).
    """

    def __init__(
        self, ray: Any, node: str, handle: Any, watches: _Watches | None = None, cores: int = 1
    ) -> None:
        self.ray, self.node, self.handle = ray, node, handle
        self.cores = cores  # the node's CPUs as Ray counts them (its `CPU` resource)
        self.watches = watches if watches is not None else _Watches(ray)
        self.lost = False
        self.lost_reason = ""
        self._watch: Any = None  # the agent's outstanding `watch` call, sent at `_watch_sent`
        self._watch_sent = 0.0
        self._watched: set[str] = set()  # attempt dirs the agent watches, as far as this head knows
        self._ended: dict[str, Outcome] = {}  # ends the watch reported, not yet polled
        self.sample_s: float | None = None  # the agent samples with its watches (RayFleet.monitor)
        self.heat: Heat | None = None
        self.readings: list[Reading] = []  # readings the watches brought, not yet taken
        self.read_error: str | None = None  # why the agent last could not read its devices
        self.delivered = False  # a sampling watch has returned: readings come with the watches
        self._watch_sampled = False  # the outstanding watch samples

    def _take_watch(self) -> None:
        """Keep the ends and readings of a returned watch, and send a new one while there is
        anything to watch or to sample (a failed watch marks the node lost and raises)."""
        if self._watch is not None:
            if not self.watches.ready(self._watch):
                if time.monotonic() - self._watch_sent > WATCH_S + CALL_TIMEOUT_S:
                    exc = TimeoutError(f"the agent's watch did not answer in {WATCH_S + CALL_TIMEOUT_S:g} s")
                    self.mark_lost(exc)
                    raise exc
                return
            ref, self._watch = self._watch, None
            self.watches.out.pop(self.node, None)
            try:
                got: Watched = self.ray.get(ref, timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                self.mark_lost(exc)
                raise
            for d, rc in got.ended:
                self._watched.discard(d)
                self._ended[d] = (True, rc)
            if self._watch_sampled and self.delivered:
                self.readings.extend(got.readings)
            elif self._watch_sampled:  # the first: its readings overlap the direct reads made meanwhile,
                self.delivered = True  # so only an alert's are kept
                if got.alert:
                    self.readings.extend(got.readings)
            if got.error:
                self.read_error = got.error
            if got.alert:
                self.watches.urgent = True
        if self._watch is None and (self._watched or self.sample_s is not None) and not self.lost:
            try:
                self._watch = self.watches.out[self.node] = self.handle.watch.remote(
                    WATCH_S, self.sample_s, self.heat
                )
                self._watch_sampled = self.sample_s is not None
                self._watch_sent = time.monotonic()
            except Exception as exc:
                self.mark_lost(exc)
                raise

    def _call(self, method: str, *args: Any) -> Any:
        return self._begin(method, *args)()

    def mark_lost(self, exc: BaseException) -> None:
        """Record that the agent is unreachable (a timeout or a dead actor)."""
        self.watches.out.pop(self.node, None)
        if not self.lost:
            self.lost = True
            self.lost_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("node %s lost: %s", self.node, self.lost_reason)

    def _begin(self, method: str, *args: Any) -> Callable[[], Any]:
        """Send one request now; the returned function waits for its answer (a failure marks the
        node lost and raises)."""
        try:
            ref = getattr(self.handle, method).remote(*args)
        except Exception as exc:
            self.mark_lost(exc)
            raise

        def collect() -> Any:
            try:
                return self.ray.get(ref, timeout=CALL_TIMEOUT_S)
            except Exception as exc:
                self.mark_lost(exc)
                raise

        return collect

    def pump(self) -> None:
        """Take a returned watch and keep one outstanding (a failed one marks the node lost)."""
        with contextlib.suppress(Exception):
            self._take_watch()

    def take_readings(self) -> list[Reading]:
        """The readings the watches brought since the last take (none before the first sampling
        watch has returned: `delivered`)."""
        out, self.readings = self.readings, []
        return out

    def spawn(self, requests: list[LaunchRequest]) -> Callable[[], list[int | str]]:
        collect = self._begin("spawn", requests)

        def spawned() -> list[int | str]:
            pids: list[int | str] = collect()
            self._watched.update(r.dir for r, pid in zip(requests, pids, strict=True) if isinstance(pid, int))
            return pids

        return spawned

    def poll(self, probes: list[Probe], fresh: bool = False) -> Callable[[], list[Outcome]]:
        self._take_watch()
        if not fresh and all(p.dir in self._watched or p.dir in self._ended for p in probes):
            result = [self._ended.pop(p.dir, (False, None)) for p in probes]
            return lambda: result
        collect = self._begin("poll", probes)

        def polled() -> list[Outcome]:
            out: list[Outcome] = collect()
            for p, (ended, _) in zip(probes, out, strict=True):
                self._ended.pop(p.dir, None)
                if ended:
                    self._watched.discard(p.dir)
                elif p.pid is not None:
                    self._watched.add(p.dir)
            self._take_watch()
            return out

        return polled

    def signal(self, pids: list[int], sig: int) -> None:
        self._call("signal", pids, sig)

    def cancel_if_unclaimed(self, dirs: list[str]) -> list[bool]:
        return self._call("cancel_if_unclaimed", dirs)

    def files(self, dirs: list[str]) -> list[dict[str, Any]]:
        return self._call("files", dirs)

    def alive(self, probes: list[Probe]) -> list[bool]:
        return self._call("alive", probes)

    def close(self) -> None:
        """Nothing: the agent outlives this head (`RayFleet.end_run` ends it)."""


class RayFleet:
    """The head's device backend over the cluster: every node's GPUs (`discover`, `read`), one site
    per node (`sites`), and `end_run` to end the agents once the run is over.

    `nodes`: the plan's node ids to run on (those the cluster has; the others' GPUs are not local);
    `run`: a key naming this run's agents; `sims`: a directory of simulated fleets, `<node>.json`
    per node (None: NVML on every node); `state_dir`: the head's state directory, whose path each
    node uses for its attempt files and logs (`nodes/<node>/`).
    """

    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        nodes: list[str],
        run: str,
        sims: Path | None,
        state_dir: Path,
        epoch: float | None,
        detached: bool = True,
    ) -> None:
        self.ray = ray = connect(address)
        self.node = "ray"
        cluster = node_ids(ray)
        self.missing = [n for n in nodes if n not in cluster]
        wanted = [n for n in nodes if n in cluster]
        if not wanted:
            have = ", ".join(sorted(cluster)) or "none"
            raise ClusterUnavailable(f"none of the problem's nodes is in the Ray cluster (Ray nodes: {have})")
        self.cluster_nodes = {n: cluster[n] for n in wanted}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        agent = _agent_class(ray)
        self.handles: dict[str, Any] = {}
        found: set[str] = set()  # nodes whose agent outlived a previous head: tasks may run there
        for n in wanted:
            name = f"gpuplan-agent-{run}-{n}"
            handle = None
            if detached:
                with contextlib.suppress(ValueError):
                    handle = ray.get_actor(name, namespace=NAMESPACE)
                    found.add(n)
            if handle is None:
                fleet = _sim_fleet(sims, n) if sims is not None else None
                opts: dict[str, Any] = {
                    "num_cpus": 0,
                    "num_gpus": 0,
                    "max_restarts": 0,
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(cluster[n]["NodeID"], soft=False),
                    "runtime_env": {"env_vars": AGENT_ENV},
                    "max_concurrency": AGENT_CONCURRENCY,
                }
                if detached:
                    opts.update(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True)
                root = str(state_dir / "nodes" / n)
                handle = agent.options(**opts).remote(n, fleet, epoch, root)
            self.handles[n] = handle
        self._watches = watches = _Watches(ray)
        self._sites = {
            n: RaySite(ray, n, h, watches, cores=_cpus(self.cluster_nodes[n]))
            for n, h in self.handles.items()
        }
        self._pushed = False  # readings come with the watches (monitor)
        refs = {n: h.hello.remote() for n, h in self.handles.items()}
        self.hello: dict[str, dict[str, Any]] = {}
        for n, ref in refs.items():
            try:
                self.hello[n] = ray.get(ref, timeout=60)
            except Exception as exc:
                if not found:  # a new run: nothing runs yet, give up cleanly
                    self.end_run()
                    raise ClusterUnavailable(
                        f"the agent on node {n} did not start: {_first_line(exc)}"
                    ) from None
                # a resumed run: other nodes' tasks run on; this node counts as lost
                self._sites[n].mark_lost(exc)
                self.hello[n] = {"devices": []}
        check_protocol(self.hello)
        warn_polling(self.hello)
        self._devices = [DeviceInfo(**{**d, "node": n}) for n in wanted for d in self.hello[n]["devices"]]

    # DeviceBackend ---------------------------------------------------------------------------------
    def discover(self) -> list[DeviceInfo]:
        """Every GPU of every node the run uses, each with its node."""
        return list(self._devices)

    def monitor(self, sample_s: float, heat: Heat | None) -> None:
        """Have every agent sample its GPUs every `sample_s` seconds and return the readings with its
        watches, at once when one may change the head's judgement under `heat` (module docstring)."""
        self._pushed = True
        for s in self._sites.values():
            s.sample_s, s.heat = sample_s, heat

    @property
    def urgent(self) -> bool:
        """Whether a watch brought a reading the head should judge now rather than at its next sample."""
        return self._watches.urgent

    def read(self) -> list[Reading]:
        """Every node's readings since the last read: those the watches brought (`monitor`), or, for a
        node whose watches have not brought any yet (and without `monitor`, every node), read now, in
        parallel. A lost node's GPUs read unhealthy. Raises NodeReadFailed, keeping the readings for
        the next read, when an agent could not read its devices at all."""
        if self._pushed:
            for s in self._sites.values():
                if not s.lost:
                    s.pump()
        errors = [(n, s.read_error) for n, s in self._sites.items() if s.read_error and not s.lost]
        if errors:
            for n, _ in errors:
                self._sites[n].read_error = None
            raise NodeReadFailed("; ".join(f"node {n}: {e}" for n, e in errors))
        self._watches.urgent = False
        out: list[Reading] = []
        direct = []
        for n, s in self._sites.items():
            pushed = s.take_readings() if self._pushed and not s.lost else []
            if s.delivered or s.lost:
                out.extend(pushed)
            else:
                direct.append(n)
        out.extend(self._read_now(direct))
        now = time.time()
        for n, s in self._sites.items():
            if s.lost:
                out.extend(
                    Reading(gpu=d.id, t=now, healthy=False, error=f"node {n} lost ({s.lost_reason})")
                    for d in self._devices
                    if d.node == n
                )
        return out

    def _read_now(self, nodes: list[str]) -> list[Reading]:
        """The readings of `nodes`, asked in parallel (a node that does not answer is marked lost)."""
        refs = {n: self._sites[n].handle.read.remote() for n in nodes}
        out: list[Reading] = []
        for n, ref in refs.items():
            try:
                out.extend(self.ray.get(ref, timeout=CALL_TIMEOUT_S))
            except Exception as exc:
                if _lost(exc, self.ray) or isinstance(exc, self.ray.exceptions.GetTimeoutError):
                    self._sites[n].mark_lost(exc)
                else:
                    raise
        return out

    def close(self) -> None:
        """Disconnect from the cluster (the agents live on until `end_run`)."""
        with contextlib.suppress(Exception):
            self.ray.shutdown()

    # cluster ---------------------------------------------------------------------------------------
    def sites(self) -> dict[str, RaySite]:
        """One site per node."""
        return dict(self._sites)

    def usage(self) -> dict[str, Any]:
        """Each reachable agent's CPU and memory (and its spawner's)."""
        refs = {n: s.handle.usage.remote() for n, s in self._sites.items() if not s.lost}
        out = {}
        for n, ref in refs.items():
            with contextlib.suppress(Exception):
                out[n] = self.ray.get(ref, timeout=CALL_TIMEOUT_S)
        return out

    def end_run(self) -> None:
        """End every agent (their spawners stop; no task runs any more when this is called)."""
        for n, h in self.handles.items():
            if not self._sites[n].lost:
                with contextlib.suppress(Exception):
                    self.ray.get(h.stop.remote(), timeout=CALL_TIMEOUT_S)
            with contextlib.suppress(Exception):
                self.ray.kill(h)


def check_protocol(hello: dict[str, dict[str, Any]]) -> None:
    """Refuse agents that answer other calls than this head makes (`agent.PROTOCOL`; those before it
    said none: 1). Agents outlive the head, so a run resumed by another gpuplan version finds those
    of the version that started it; calling them anyway would fail, count their nodes lost and start
    their running tasks again elsewhere. `hello`: each node's answer (a lost node's has no pid)."""
    other = {n: h.get("protocol", 1) for n, h in hello.items() if "pid" in h}
    other = {n: v for n, v in sorted(other.items()) if v != PROTOCOL}
    if other:
        nodes = ", ".join(f"{n} (protocol {v})" for n, v in other.items())
        raise ClusterUnavailable(
            f"the run's agents on {nodes} were started by another gpuplan version (this one speaks "
            f"protocol {PROTOCOL}): resume the run with that version; its tasks keep running"
        )


def warn_polling(hello: dict[str, dict[str, Any]]) -> None:
    """Say which nodes' agents look for ends every `agent.WATCH_STEP_S` rather than sleep until one
    is announced (no inotify there): it works, at some CPU on those nodes while they wait."""
    for n, h in sorted(hello.items()):
        if h.get("no_doorbell"):
            log.warning(
                "node %s: its agent looks for ended tasks every %g s (%s)", n, WATCH_STEP_S, h["no_doorbell"]
            )


def _cpus(info: dict[str, Any]) -> int:
    """A Ray node's CPUs (its `CPU` resource, rounded down; at least 1)."""
    return max(1, int(info.get("Resources", {}).get("CPU", 1)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _sim_fleet(sims: Path, node: str) -> dict[str, Any] | None:
    """The simulated fleet of `node` (`<sims>/<node>.json`, validated), or None: no GPUs there."""
    from gpuplan.executor.sim import load_sim

    path = sims / f"{node}.json"
    if not path.is_file():
        return {"node": node, "gpus": [], "script": []}
    return json.loads(load_sim(path).model_dump_json())


def inventory(address: str, sims: Path | None) -> dict[str, Any]:
    """The whole cluster as a gpuplan problem: one node per Ray node (its CPU and memory as Ray
    reports them), its GPUs with ids, types, health and temperature; no tasks."""
    ray = connect(address)
    cluster = node_ids(ray)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    agent = _agent_class(ray)
    handles = {
        n: agent.options(
            num_cpus=0,
            num_gpus=0,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(info["NodeID"], soft=False),
            runtime_env={"env_vars": AGENT_ENV},
        ).remote(n, _sim_fleet(sims, n) if sims is not None else None, None, "/tmp/gpuplan-inventory")
        for n, info in cluster.items()
    }
    try:
        hello = {n: h.hello.remote() for n, h in handles.items()}
        reads = {n: h.read.remote() for n, h in handles.items()}
        types: dict[str, float] = {}
        nodes = []
        for n in sorted(cluster):
            try:
                devices = ray.get(hello[n], timeout=60)["devices"]
                readings = {r.gpu: r for r in ray.get(reads[n], timeout=CALL_TIMEOUT_S)}
            except Exception as exc:
                raise ClusterUnavailable(f"node {n}: its agent failed: {_first_line(exc)}") from None
            gpus = []
            for d in devices:
                types[d["model"]] = max(types.get(d["model"], 0.0), d["memory_gb"])
                r = readings.get(d["id"])
                entry: dict[str, Any] = {
                    "id": d["id"],
                    "type": d["model"],
                    "healthy": bool(r.healthy) if r else True,
                }
                temp = r.temperature_c if r and r.temperature_c is not None else d["temperature_c"]
                if temp is not None:
                    entry["temperature_c"] = temp
                gpus.append(entry)
            res = cluster[n].get("Resources", {})
            node: dict[str, Any] = {"id": n, "gpus": gpus}
            if res.get("CPU"):
                node["cpu_cores"] = res["CPU"]
            if res.get("memory"):
                node["memory_gb"] = round(res["memory"] / 1e9, 3)
            nodes.append(node)
    finally:
        for h in handles.values():
            with contextlib.suppress(Exception):
                ray.kill(h)
        with contextlib.suppress(Exception):
            ray.shutdown()
    return {
        "gpu_types": [{"name": name, "memory_gb": round(mem, 3)} for name, mem in types.items()],
        "nodes": nodes,
        "tasks": [],
    }


__all__ = [
    "ClusterUnavailable",
    "NodeReadFailed",
    "RayFleet",
    "RaySite",
    "check_protocol",
    "connect",
    "inventory",
    "node_ids",
]

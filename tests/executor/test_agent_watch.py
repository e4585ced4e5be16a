"""Ends reported by node agents: `NodeAgent.watch` returns as soon as an attempt of its node ends, and
`RaySite` answers the head's polls from it without a round trip per poll. Ray itself is replaced by
a thread pool (`_FakeRay`), so what is tested is the head's and the agent's logic, not Ray's."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from exec_helpers import count_exit_reads, sh_request

from gpuplan.executor import agent as agent_module
from gpuplan.executor import raycluster
from gpuplan.executor.agent import Heat, NodeAgent, Watched
from gpuplan.executor.doorbell import Doorbell
from gpuplan.executor.raycluster import RaySite, _Watches
from gpuplan.executor.sites import Probe


class _FakeRay:
    """`ray.get` and `ray.wait` over futures."""

    @staticmethod
    def get(ref: Future[Any], timeout: float | None = None) -> Any:
        return ref.result(timeout=timeout)

    def __init__(self) -> None:
        self.waits: list[int] = []  # how many refs each `wait` was asked about

    def wait(
        self, refs: list[Future[Any]], num_returns: int = 1, timeout: float = 0
    ) -> tuple[list[Future[Any]], list[Future[Any]]]:
        self.waits.append(len(refs))
        return [r for r in refs if r.done()], [r for r in refs if not r.done()]


class _Method:
    def __init__(self, pool: ThreadPoolExecutor, fn: Any) -> None:
        self.pool, self.fn = pool, fn

    def remote(self, *args: Any) -> Future[Any]:
        return self.pool.submit(self.fn, *args)


class _Handle:
    """An actor handle over a local agent: each `.remote` call runs in a thread pool (as a threaded
    actor takes several calls at once)."""

    def __init__(self, agent: NodeAgent, pool: ThreadPoolExecutor) -> None:
        self.agent, self.pool = agent, pool

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.pool, getattr(self.agent, name))


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[NodeAgent]:
    a = NodeAgent("n0", {"node": "n0", "gpus": []}, None, str(tmp_path / "n0"))
    yield a
    a.stop()


def test_watch_returns_an_end_as_it_happens_and_nothing_after_its_timeout(
    agent: NodeAgent, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    assert agent.watch(0.2).ended == [] and 0.15 <= time.monotonic() - t0 < 1.0
    req = sh_request(tmp_path, "a", "sleep 0.3; exit 3")
    (pid,) = agent.spawn([req])
    assert isinstance(pid, int)
    t0 = time.monotonic()
    assert agent.watch(10.0).ended == [(req.dir, 3)]
    assert time.monotonic() - t0 < 2.0
    assert agent.watch(0.1).ended == []  # reported once


def test_watch_reads_only_the_exit_files_of_announced_ends(
    agent: NodeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wrapper announces its end in the agent's `ended` directory, so a watch step reads the exit
    files of those ends (and of due life checks), not of every attempt of the node; the announcement
    is removed once reported."""
    monkeypatch.setattr(agent_module, "ALIVE_CHECK_S", 60.0)  # no life check falls due, however slow
    long = [sh_request(tmp_path, f"long{k}", "sleep 30") for k in range(12)]
    short = sh_request(tmp_path, "short", "sleep 0.4; exit 4")
    pids = agent.spawn([*long, short])
    assert all(isinstance(p, int) for p in pids)
    reads = count_exit_reads(monkeypatch)
    try:
        assert agent.watch(5.0).ended == [(short.dir, 4)]
        assert reads == [short.dir]  # 13 attempts, some 8 steps: 100 reads without the announcements
        assert list(agent.ended.iterdir()) == []
    finally:
        for p in pids[:-1]:
            os.killpg(int(p), signal.SIGKILL)


def test_a_wrapper_killed_without_an_exit_record_is_reported_by_its_life_check(
    agent: NodeAgent, tmp_path: Path
) -> None:
    req = sh_request(tmp_path, "k", "sleep 30")
    (pid,) = agent.spawn([req])
    assert isinstance(pid, int)
    time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    assert agent.watch(5.0).ended == [(req.dir, None)]


def _count_looks(agent: NodeAgent, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times the agent's watch looks at its `ended` directory."""
    looks: list[float] = []
    real = agent.site.announced

    def announced() -> set[str]:
        looks.append(time.monotonic())
        return real()

    monkeypatch.setattr(agent.site, "announced", announced)
    return looks


def test_an_idle_watch_sleeps_until_an_end_is_announced(
    agent: NodeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing ending and nothing to sample, a watch does not wake at a fixed pace (it looked 20
    times a second before the doorbell); an end still returns it at once."""
    if not Doorbell(agent.ended, 0.05).active:
        pytest.skip("no inotify here: the watch looks every WATCH_STEP_S")
    looks = _count_looks(agent, monkeypatch)
    assert agent.watch(1.0).ended == []
    assert len(looks) <= 3
    req = sh_request(tmp_path, "a", "sleep 0.5; exit 5")
    agent.spawn([req])
    looks.clear()
    t0 = time.monotonic()
    assert agent.watch(10.0).ended == [(req.dir, 5)]
    assert time.monotonic() - t0 < 2.0 and len(looks) <= 4


def test_life_checks_fall_due_together(
    agent: NodeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempts started at different times have their wrappers' life checked in one look (not one
    wake-up each), and a wrapper killed is still found within about a second."""
    if not Doorbell(agent.ended, 0.05).active:
        pytest.skip("no inotify here: the watch looks every WATCH_STEP_S")
    reqs = [sh_request(tmp_path, f"s{k}", "sleep 30") for k in range(6)]
    pids = []
    for r in reqs:  # started 0.1 s apart: their first checks would fall due 0.1 s apart
        pids += agent.spawn([r])
        time.sleep(0.1)
    looks = _count_looks(agent, monkeypatch)
    try:
        assert agent.watch(3.0).ended == []
        assert len(looks) <= 12  # half-second naps and a look per second for all; one by one: 18 more
        os.killpg(int(pids[2]), signal.SIGKILL)
        t0 = time.monotonic()
        assert agent.watch(5.0).ended == [(reqs[2].dir, None)]
        assert time.monotonic() - t0 < 1.6
    finally:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(p), signal.SIGKILL)


def test_an_attempt_spawned_while_the_watch_sleeps_is_checked_in_time(
    agent: NodeAgent, tmp_path: Path
) -> None:
    """A watch asleep with nothing to look at still wakes to check an attempt spawned meanwhile: its
    wrapper killed (no announcement) is found within about a second, not at the watch's timeout."""
    req = sh_request(tmp_path, "late", "sleep 30")
    pids: list[int | str] = []

    def spawn_and_kill() -> None:
        pids.extend(agent.spawn([req]))
        time.sleep(0.2)
        os.killpg(int(pids[0]), signal.SIGKILL)

    threading.Timer(0.3, spawn_and_kill).start()
    t0 = time.monotonic()
    assert agent.watch(8.0).ended == [(req.dir, None)]
    assert time.monotonic() - t0 < 3.0


def test_the_head_polls_without_a_round_trip_while_the_agent_watches(
    agent: NodeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raycluster, "WATCH_S", 0.3)
    polls: list[int] = []
    real_poll = agent.poll

    def counted(probes: list[Probe]) -> Any:
        polls.append(len(probes))
        return real_poll(probes)

    monkeypatch.setattr(agent, "poll", counted)
    with ThreadPoolExecutor(4) as pool:
        site = RaySite(_FakeRay(), "n0", _Handle(agent, pool))
        reqs = [sh_request(tmp_path, "ok", "sleep 0.4"), sh_request(tmp_path, "bad", "sleep 0.8; exit 5")]
        pids = site.spawn(reqs)()
        assert all(isinstance(p, int) for p in pids)
        probes = [Probe(r.dir, int(p), True) for r, p in zip(reqs, pids, strict=True)]
        seen: dict[str, tuple[bool, int | None]] = {}
        deadline = time.monotonic() + 10
        turns = 0
        while len(seen) < 2 and time.monotonic() < deadline:
            left = [p for p in probes if p.dir not in seen]
            for p, out in zip(left, site.poll(left)(), strict=True):
                if out[0]:
                    seen[p.dir] = out
            turns += 1
            time.sleep(0.02)
        assert seen == {reqs[0].dir: (True, 0), reqs[1].dir: (True, 5)}
        assert turns > 20 and polls == []  # every answer came from the watch
        assert site.poll(probes[:1], fresh=True)() == [(True, 0)] and polls == [1]  # fresh: asked
        site.close()


def test_a_watch_that_never_answers_marks_the_node_lost(
    agent: NodeAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raycluster, "WATCH_S", 0.01)
    never: Future[Any] = Future()
    monkeypatch.setattr(agent, "watch", lambda *args: never.result())
    with ThreadPoolExecutor(4) as pool:
        site = RaySite(_FakeRay(), "n0", _Handle(agent, pool))
        req = sh_request(tmp_path, "hang", "sleep 5")
        (pid,) = site.spawn([req])()
        probe = Probe(req.dir, int(pid), True)
        assert site.poll([probe])() == [(False, None)]  # asked: running; the watch is sent
        monkeypatch.setattr(raycluster, "CALL_TIMEOUT_S", 0.05)
        time.sleep(0.1)
        with pytest.raises(TimeoutError, match="did not answer"):
            site.poll([probe])
        assert site.lost and "TimeoutError" in site.lost_reason
        never.set_result(Watched())
        os.killpg(int(pid), signal.SIGKILL)


def test_one_wait_looks_at_every_nodes_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sites sharing one `_Watches` are answered by one `ray.wait` over all their agents' watches
    per loop turn (not one per node), and each node's end still reaches its own site."""
    monkeypatch.setattr(raycluster, "WATCH_S", 0.3)
    agents = [NodeAgent(n, {"node": n, "gpus": []}, None, str(tmp_path / n)) for n in ("n0", "n1")]
    fake = _FakeRay()
    with ThreadPoolExecutor(8) as pool:
        watches = _Watches(fake)
        sites = [RaySite(fake, a.node, _Handle(a, pool), watches) for a in agents]
        probes = []
        for i, site in enumerate(sites):
            req = sh_request(tmp_path / site.node, f"t{i}", f"sleep {0.3 + 0.3 * i}; exit {i + 3}")
            (pid,) = site.spawn([req])()
            probes.append(Probe(req.dir, int(pid), True))
        seen: dict[str, tuple[bool, int | None]] = {}
        deadline = time.monotonic() + 10
        turns = 0
        while len(seen) < 2 and time.monotonic() < deadline:
            fake.waits.clear()
            for site, probe in zip(sites, probes, strict=True):
                if probe.dir not in seen and (out := site.poll([probe])())[0][0]:
                    seen[probe.dir] = out[0]
            assert len(fake.waits) <= 1, fake.waits  # one sweep for the turn, whatever the nodes
            turns += 1
            time.sleep(0.02)
        assert seen == {probes[0].dir: (True, 3), probes[1].dir: (True, 4)}
        assert turns > 10
    for a in agents:
        a.stop()


def _sim_agent(tmp_path: Path, script: list[dict[str, Any]]) -> NodeAgent:
    """An agent whose node has two simulated GPUs, g0 and g1, and the given script (its clock starts now)."""
    fleet = {
        "node": "n0",
        "gpus": [{"id": g, "uuid": f"GPU-{g}", "model": "A100", "memory_gb": 80} for g in ("g0", "g1")],
        "script": script,
    }
    return NodeAgent("n0", fleet, time.time(), str(tmp_path / "n0"))


def test_a_watch_samples_the_gpus_and_returns_at_once_when_one_fails(tmp_path: Path) -> None:
    agent = _sim_agent(tmp_path, [{"at_s": 0.5, "gpu": "g1", "fail": True}])
    try:
        t0 = time.monotonic()
        got = agent.watch(5.0, 0.1)
        took = time.monotonic() - t0
        assert got.alert and got.ended == [] and got.error is None
        assert 0.4 <= took < 2.0  # at the failure, not at the timeout
        by_gpu = {g: [r for r in got.readings if r.gpu == g] for g in ("g0", "g1")}
        assert len(by_gpu["g0"]) == len(by_gpu["g1"]) >= 4  # one reading per GPU every 0.1 s
        assert [r.healthy for r in by_gpu["g1"]][-1] is False and all(r.healthy for r in by_gpu["g1"][:-1])
        assert all(b.t > a.t for a, b in itertools.pairwise(by_gpu["g0"]))
        t0 = time.monotonic()
        got = agent.watch(0.35, 0.1)  # still failed: nothing new to say early
        assert not got.alert and time.monotonic() - t0 >= 0.3 and len(got.readings) >= 4
        assert agent.watch(0.2).readings == []  # not asked to sample
    finally:
        agent.stop()


def test_a_watch_returns_at_once_when_a_gpu_crosses_a_heat_threshold_only(tmp_path: Path) -> None:
    """A temperature change within a zone of the head's thresholds waits for the timeout; crossing
    into the overheated zone (or back under the cool threshold) returns at once."""
    script = [
        {"at_s": 0.2, "gpu": "g0", "temperature_c": 70.0},  # warmer, still cool for a limit of 85
        {"at_s": 0.9, "gpu": "g0", "temperature_c": 86.0},  # over the limit
        {"at_s": 1.6, "gpu": "g0", "temperature_c": 79.0},  # cooled under limit - margin
    ]
    agent = _sim_agent(tmp_path, script)
    heat = Heat(hot_above_c=85.0, cool_at_c=80.0)
    try:
        got = agent.watch(0.5, 0.1, heat)
        assert not got.alert and any(r.temperature_c == 70.0 for r in got.readings)
        got = agent.watch(5.0, 0.1, heat)
        assert got.alert and [r.temperature_c for r in got.readings if r.gpu == "g0"][-1] == 86.0
        got = agent.watch(5.0, 0.1, heat)
        assert got.alert and [r.temperature_c for r in got.readings if r.gpu == "g0"][-1] == 79.0
    finally:
        agent.stop()


def test_the_head_takes_readings_from_the_watches_with_no_attempts_and_no_read_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site told to sample keeps a watch outstanding with nothing to watch; the first sampling
    watch's readings are dropped (they overlap the head's direct reads meanwhile), later ones are
    taken in order, and an alert makes the watches urgent."""
    monkeypatch.setattr(raycluster, "WATCH_S", 0.3)
    agent = _sim_agent(tmp_path, [{"at_s": 1.2, "gpu": "g0", "fail": True}])
    reads: list[int] = []
    monkeypatch.setattr(agent, "read", lambda: reads.append(1) or [])
    fake = _FakeRay()
    try:
        with ThreadPoolExecutor(4) as pool:
            site = RaySite(fake, "n0", _Handle(agent, pool))
            site.sample_s, site.heat = 0.1, None
            site.pump()  # sends the first watch
            assert site.take_readings() == [] and not site.delivered
            taken: list[Any] = []
            deadline = time.monotonic() + 10
            while not site.watches.urgent and time.monotonic() < deadline:
                site.pump()
                taken.extend(site.take_readings())
                time.sleep(0.02)
            assert site.delivered and site.watches.urgent
            taken.extend(site.take_readings())
            g0 = [r for r in taken if r.gpu == "g0"]
            assert len(g0) >= 5 and g0[-1].healthy is False
            assert all(b.t > a.t for a, b in itertools.pairwise(g0))
            assert reads == []  # every reading came with a watch
            site.sample_s = None  # let the outstanding watch end
            time.sleep(0.4)
    finally:
        agent.stop()


def test_a_watch_returns_at_once_when_the_devices_cannot_be_read(tmp_path: Path) -> None:
    agent = _sim_agent(tmp_path, [])

    def broken() -> list[Any]:
        raise RuntimeError("NVML driver gone")

    agent.backend.read = broken  # type: ignore[method-assign]
    try:
        t0 = time.monotonic()
        got = agent.watch(5.0, 0.1)
        assert got.error == "RuntimeError: NVML driver gone" and not got.alert and got.readings == []
        assert time.monotonic() - t0 < 1.0
    finally:
        agent.stop()


def test_the_fleet_reads_directly_until_the_watches_bring_readings_and_reports_a_failed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`RayFleet.read` over one node (its set-up without a cluster): a direct read until the first
    sampling watch has returned, then the watches' readings only; an agent that cannot read its
    devices makes the next read raise, and the readings wait for the read after."""
    monkeypatch.setattr(raycluster, "WATCH_S", 0.3)
    agent = _sim_agent(tmp_path, [])
    direct: list[int] = []
    real_read = agent.read
    monkeypatch.setattr(agent, "read", lambda: direct.append(1) or real_read())
    fake = _FakeRay()
    fake.exceptions = type("E", (), {"GetTimeoutError": TimeoutError})  # type: ignore[attr-defined]
    try:
        with ThreadPoolExecutor(4) as pool:
            fleet = object.__new__(raycluster.RayFleet)
            fleet.ray, fleet._watches, fleet._pushed = fake, _Watches(fake), False
            fleet._sites = {"n0": RaySite(fake, "n0", _Handle(agent, pool), fleet._watches)}
            fleet._devices = []
            fleet.monitor(0.1, None)
            first = fleet.read()
            assert {r.gpu for r in first} == {"g0", "g1"} and direct == [1]
            deadline = time.monotonic() + 5
            while not fleet._sites["n0"].delivered and time.monotonic() < deadline:
                fleet.read()
                time.sleep(0.05)
            calls = len(direct)
            time.sleep(0.5)
            later = fleet.read() + fleet.read()
            assert len(direct) == calls and len(later) >= 2 * 3  # g0 and g1, some 3 samples or more
            real_backend_read = agent.backend.read
            agent.backend.read = lambda: (_ for _ in ()).throw(RuntimeError("NVML driver gone"))  # type: ignore[method-assign]
            time.sleep(0.5)
            with pytest.raises(raycluster.NodeReadFailed, match="node n0: RuntimeError: NVML driver gone"):
                fleet.read()
            agent.backend.read = real_backend_read  # type: ignore[method-assign]
            time.sleep(0.5)
            assert fleet.read() and len(direct) == calls
            fleet._sites["n0"].sample_s = None  # let the outstanding watch end
            time.sleep(0.4)
    finally:
        agent.stop()


def test_a_head_refuses_agents_of_another_protocol(agent: NodeAgent) -> None:
    """Agents outlive their head: a head finding agents that answer other calls (another gpuplan
    version's, or one from before the protocol was said: 1) stops with the nodes named, rather than
    call them, count their nodes lost and start their tasks again elsewhere. A lost node is left out."""
    hello = agent.hello()
    assert hello["protocol"] == agent_module.PROTOCOL
    raycluster.check_protocol({"n0": hello, "n2": {"devices": []}})
    old = {k: v for k, v in hello.items() if k != "protocol"}
    named = r"agents on n1 \(protocol 1\), n3 \(protocol 9\)"
    with pytest.raises(raycluster.ClusterUnavailable, match=named):
        raycluster.check_protocol({"n0": hello, "n3": {**hello, "protocol": 9}, "n1": old})


def test_an_agent_without_a_doorbell_says_why_and_the_head_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where inotify is missing the watch still works, looking every WATCH_STEP_S; the agent's hello
    says why, and the head logs it per node rather than falling back silently."""
    from gpuplan.executor import doorbell as doorbell_module

    def no_libc(*_: object, **__: object) -> object:
        raise OSError("no libc here")

    monkeypatch.setattr(doorbell_module.ctypes, "CDLL", no_libc)
    slow = NodeAgent("n1", {"node": "n1", "gpus": []}, None, str(tmp_path / "n1"))
    try:
        hello = slow.hello()
        assert hello["no_doorbell"] is not None and "no libc here" in hello["no_doorbell"]
        req = sh_request(tmp_path, "a", "exit 2")
        slow.spawn([req])
        assert slow.watch(10.0).ended == [(req.dir, 2)]
    finally:
        slow.stop()
    with caplog.at_level("WARNING", logger="gpuplan"):
        raycluster.warn_polling({"n0": {"no_doorbell": None}, "n1": hello})
    assert [r.getMessage() for r in caplog.records] == [
        f"node n1: its agent looks for ended tasks every {agent_module.WATCH_STEP_S:g} s"
        " (no inotify (no libc here))"
    ]


def test_an_agent_with_a_doorbell_says_so(agent: NodeAgent) -> None:
    if not Doorbell(agent.ended, 0.05).active:
        pytest.skip("no inotify here")
    assert agent.hello()["no_doorbell"] is None

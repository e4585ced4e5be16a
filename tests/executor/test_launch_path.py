"""The launch path: lazy journal commits for what the wrapper files can tell again, and launch
rounds that begin every site's batch before awaiting any (nodes fork their wrappers in parallel).

The sites here are node agents (`NodeAgent`, plain Python) called in this process, so no Ray is
needed: what is tested is the head's order of requests."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from exec_helpers import FAST, commands, load_problem, make_executor, records, run, sim_fleet, solve

import gpuplan
from gpuplan.executor import Executor, launcher, scheduling
from gpuplan.executor.agent import NodeAgent
from gpuplan.executor.devices import DeviceInfo, Reading
from gpuplan.executor.journal import Journal
from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sites import LocalSite, Outcome, Probe

# journal ------------------------------------------------------------------------------------------


def _synchronous(j: Journal) -> int:
    return int(j.exec("PRAGMA synchronous").fetchone()[0])


def test_a_lazy_transaction_commits_for_other_readers_and_restores_full_sync(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    try:
        assert _synchronous(j) == 2  # FULL
        with j.tx(durable=False):
            j.set("k", 1)
            assert _synchronous(j) == 1  # NORMAL while the lazy transaction is open
        assert _synchronous(j) == 2
        other = sqlite3.connect(tmp_path / "j.sqlite")
        assert other.execute("SELECT value FROM meta WHERE key='k'").fetchone() == ("1",)
        other.close()
        with pytest.raises(ZeroDivisionError), j.tx(durable=False):
            j.set("k", 2)
            _ = 1 / 0
        assert _synchronous(j) == 2 and j.get("k") == 1  # rolled back, FULL again
    finally:
        j.close()


def test_a_durable_transaction_cannot_join_a_lazy_one(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    try:
        with pytest.raises(RuntimeError, match="cannot join a lazy"), j.tx(durable=False):
            j.set("k", 1)
            with j.tx():
                j.set("k", 2)
        assert j.get("k") is None and _synchronous(j) == 2
        with j.tx(), j.tx(durable=False):  # a lazy one inside a durable one is durable: allowed
            j.set("k", 3)
        assert j.get("k") == 3
    finally:
        j.close()


@contextlib.contextmanager
def _recording_tx(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool | str]]:
    """Record the `durable` flag of every outermost journal transaction."""
    flags: list[bool | str] = []
    real = Journal.tx

    @contextlib.contextmanager
    def tx(self: Journal, *, durable: bool = True) -> Iterator[None]:
        if not self._depth:
            flags.append(durable)
        with real(self, durable=durable):
            yield

    monkeypatch.setattr(Journal, "tx", tx)
    yield flags


def test_running_records_are_lazy_and_starting_records_durable(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = load_problem(horizon_h=4, task={"gpu_share": 1.0})  # two waves on four GPUs
    plan = solve(problem)
    spec = commands(plan, out, sleep=0.1)
    real_start = Executor._start_many
    with _recording_tx(monkeypatch) as flags:

        def start_many(self: Executor, tasks: list[Any]) -> None:
            flags.append("[")
            real_start(self, tasks)
            flags.append("]")

        monkeypatch.setattr(Executor, "_start_many", start_many)
        result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 8}
    text = " ".join(str(f) for f in flags)
    batches = text.count("[")
    assert batches >= 2 and text.count("[ True False ]") == batches
    assert "False" not in text.replace("[ True False ]", "")  # nothing else is lazy


def test_a_failed_spawn_is_recorded_durably(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawn failure uses up a retry: its transaction is fsynced, unlike a batch that started."""
    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out, sleep=0.1)
    monkeypatch.setattr(launcher.Spawner, "spawn", lambda self, reqs: ["no fork today"] * len(reqs))
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet())
    with _recording_tx(monkeypatch) as flags:
        ex._schedule()
    ex.close()
    assert len(flags) >= 2 and len(flags) % 2 == 0 and all(flags)  # two durable transactions a round
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    rows = db.execute("SELECT state, reason FROM attempts").fetchall()
    assert rows and all(s == "failed" and "no fork today" in r for s, r in rows)


# launch rounds across sites -----------------------------------------------------------------------


class _LoggedSite:
    """A node agent seen as a site, logging when each launch request is begun and collected."""

    lost = False
    cores = 2

    def __init__(self, agent: NodeAgent, log: list[tuple[str, str, int]]) -> None:
        self.node, self.agent, self.log = agent.node, agent, log

    def spawn(self, requests: list[LaunchRequest]) -> Callable[[], list[int | str]]:
        self.log.append(("begin", self.node, len(requests)))

        def collect() -> list[int | str]:
            self.log.append(("collect", self.node, len(requests)))
            return self.agent.spawn(requests)

        return collect

    def poll(self, probes: list[Probe], fresh: bool = False) -> Callable[[], list[Outcome]]:
        result = self.agent.poll(probes)
        return lambda: result

    def signal(self, pids: list[int], sig: int) -> None:
        self.agent.signal(pids, sig)

    def cancel_if_unclaimed(self, dirs: list[str]) -> list[bool]:
        return self.agent.cancel_if_unclaimed(dirs)

    def files(self, dirs: list[str]) -> list[dict[str, Any]]:
        return self.agent.files(dirs)

    def alive(self, probes: list[Probe]) -> list[bool]:
        return self.agent.alive(probes)

    def close(self) -> None:
        self.agent.stop()


class _TwoNodes:
    """A head's backend over two simulated nodes, each behind its own agent and logged site."""

    name = "two-nodes"

    def __init__(self, root: Path, epoch: float, log: list[tuple[str, str, int]]) -> None:
        self.agents = {
            n: NodeAgent(
                n,
                {
                    "node": n,
                    "gpus": [
                        {"id": f"{n}-g{k}", "uuid": f"GPU-{n}-{k}", "model": "A100", "memory_gb": 80}
                        for k in range(2)
                    ],
                    "script": [],
                },
                epoch,
                str(root / n),
            )
            for n in ("n0", "n1")
        }
        self._sites = {n: _LoggedSite(a, log) for n, a in self.agents.items()}

    def discover(self) -> list[DeviceInfo]:
        return [DeviceInfo(**d) for a in self.agents.values() for d in a.hello()["devices"]]

    def read(self) -> list[Reading]:
        return [r for a in self.agents.values() for r in a.read()]

    def sites(self) -> dict[str, _LoggedSite]:
        return dict(self._sites)

    def close(self) -> None:
        """The sites close the agents."""


def test_a_launch_round_begins_every_sites_batch_before_awaiting_any(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = gpuplan.Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
            "nodes": [
                {"id": n, "gpus": [{"id": f"{n}-g{k}", "type": "A100"} for k in range(2)]}
                for n in ("n0", "n1")
            ],
            "tasks": [{"id": f"t{k}", "gpu_share": 0.5, "work_h": 1} for k in range(8)],
        }
    )
    plan = solve(problem)
    assert {a.node for a in plan.assignments} == {"n0", "n1"}
    spec = commands(plan, out, sleep=0.2)
    log: list[tuple[str, str, int]] = []
    ex = Executor(
        tmp_path / "state",
        problem=problem,
        plan=plan,
        spec=spec,
        settings=FAST,
        backend_factory=lambda epoch: _TwoNodes(tmp_path / "nodes", epoch, log),
        cwd=str(tmp_path),
    )
    result = run(ex)
    assert result.counts == {"done": 8}
    for a in plan.assignments:
        assert len(records(out, a.task, "starts")) == 1
    # the first wave: two rounds of two tasks per node (its cores), each round's requests all begun first
    assert (
        log[:8]
        == [
            ("begin", "n0", 2),
            ("begin", "n1", 2),
            ("collect", "n0", 2),
            ("collect", "n1", 2),
        ]
        * 2
    )


class _Rounds(scheduling.SchedulingMixin):
    """Only the rounds: what `_start_many` would launch, round by round, over sites of `cores`."""

    def __init__(self, cores: list[int]) -> None:
        self.rounds: list[list[Any]] = []
        self.sites = {f"a{i}": SimpleNamespace(cores=c) for i, c in enumerate(cores)}  # type: ignore[misc]

    def _start_many(self, tasks: list[Any]) -> None:
        self.rounds.append(tasks)


@pytest.mark.parametrize(
    ("sizes", "cores", "round_max", "expected"),
    [
        ([5], [2], 256, [["a0"] * 2, ["a0"] * 2, ["a0"]]),  # one machine of 2 cores: rounds of 2
        ([3] * 8, [1] * 8, 256, [[f"a{i}" for i in range(8)]] * 3),  # 8 nodes of 1 core: one each
        ([3, 10], [2, 4], 256, [["a0"] * 2 + ["a1"] * 4, ["a0"] + ["a1"] * 4, ["a1"] * 2]),
        ([3] * 8, [1] * 8, 4, [["a0", "a1", "a2", "a3"], ["a4", "a5", "a6", "a7"]] * 3),  # the cap, in turn
        (
            [1, 5, 9],
            [4] * 3,
            4,
            [["a0", "a1", "a1", "a2"], ["a1", "a1", "a2", "a2"], ["a1", "a2", "a2"], ["a2"] * 4],
        ),
    ],
)
def test_launch_rounds_take_each_sites_cores_and_share_the_cap(
    sizes: list[int],
    cores: list[int],
    round_max: int,
    expected: list[list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduling, "ROUND_MAX", round_max)
    per_site = [(f"a{i}", [f"a{i}:{k}" for k in range(n)]) for i, n in enumerate(sizes)]
    r = _Rounds(cores)
    assert r._launch_rounds(per_site, float("inf")) is False  # type: ignore[arg-type]
    assert [[t.split(":")[0] for t in b] for b in r.rounds] == expected
    for _, tasks in per_site:  # every task once, each site's in its order
        assert [t for b in r.rounds for t in b if t in tasks] == tasks


def test_a_ray_nodes_cores_are_its_cpu_resource() -> None:
    """A round starts at most a node's CPUs there: Ray's `CPU` resource, rounded down, at least 1."""
    from gpuplan.executor.raycluster import _cpus

    assert [_cpus({"Resources": {"CPU": c}}) for c in (3.0, 0.5)] == [3, 1]
    assert _cpus({"Resources": {}}) == _cpus({}) == 1
    assert LocalSite("x").cores == len(os.sched_getaffinity(0)) >= 1


def test_launch_rounds_stop_at_the_time_box() -> None:
    r = _Rounds([4])
    assert r._launch_rounds([("a0", [f"t{k}" for k in range(20)])], 0.0) is True  # type: ignore[list-item]
    assert len(r.rounds) == 1
    r = _Rounds([4])
    assert r._launch_rounds([("a0", [f"t{k}" for k in range(4)])], 0.0) is False  # type: ignore[list-item]

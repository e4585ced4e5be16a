"""The time-tabling scheduler: gaps, aligned gang blocks, repair, determinism, the check."""

from __future__ import annotations

import numpy as np
import pytest
from cap_helpers import catalog, offer, workload

from gpuplan.capacity import plan_capacity
from gpuplan.capacity.prepare import prepare
from gpuplan.capacity.prove import prove, rows
from gpuplan.capacity.schedule import FleetNodes, Schedule, Timeline, check_schedule, level_key, repair


def _random_workload(n: int, seed: int, horizon: float = 100.0):
    rng = np.random.default_rng(seed)
    tasks = []
    for _ in range(n):
        g = int(rng.choice([1, 1, 1, 2, 4]))
        t = {
            "work_h": float(np.round(rng.uniform(1, 12), 2)),
            "gpus": g,
            "gpu_memory_gb": float(rng.integers(8, 70)),
        }
        if rng.random() < 0.3:
            t["deadline_h"] = float(np.round(rng.uniform(3 * t["work_h"], horizon), 1))
        tasks.append(t)
    return workload(horizon, *tasks)


def _cat():
    return catalog(
        offer("big", mem=80, speed=2.0, per_node=4, price=8.0),
        offer("small", mem=48, speed=1.0, per_node=4, price=3.0),
    )


def test_timeline_fills_gaps_and_aligns_blocks():
    """A short task goes into the gap a gang left; gangs take aligned blocks."""
    line = Timeline(4, 10.0)
    line.occupy([0], 0.0, 4.0)
    s, _, gpus = line.find(2, 6.0, 10.0)
    assert (s, gpus) == (0.0, (2, 3))  # the free aligned pair, not GPUs 1-2
    line.occupy(gpus, s, s + 6.0)
    s, _, gpus = line.find(4, 4.0, 10.0)
    assert (s, gpus) == (6.0, (0, 1, 2, 3))
    line.occupy(gpus, s, s + 4.0)
    s, _, gpus = line.find(1, 4.0, 10.0)  # GPU 1 is free over [0, 6]: the gap before the gang
    assert (s, gpus) == (0.0, (1,))
    assert line.find(1, 3.0, 10.0) is not None
    assert line.find(1, 7.0, 10.0) is None  # no free run of 7 h anywhere
    line.release([0], 0.0, 4.0)
    assert line.free[0] == [(0.0, 6.0)]


def test_gap_filling_avoids_extra_round():
    """One 2-GPU node, 10 h: an urgent 4 h task, a 6 h gang, a 4 h task. The old EDF list
    scheduler started the gang after the urgent task and had no room left for the last task (a
    second node); the time-table puts the last task in the gap beside the urgent one."""
    wl = workload(10, {"work_h": 4, "deadline_h": 4}, {"work_h": 6, "gpus": 2}, {"work_h": 4})
    rep = plan_capacity(wl, catalog(offer("g", per_node=2, price=1.0)), alternatives=0)
    assert rep.status == "proven"
    assert len(rep.rounds) == 1 and rep.rounds[0].proven
    assert rep.cost == pytest.approx(10.0) and rep.gap == pytest.approx(0.0)
    by = {a.task: a for a in rep.assignments}
    assert by["t0"].end_h == pytest.approx(4.0)
    assert by["t1"].start_h == pytest.approx(4.0) and by["t1"].gpus == [0, 1]
    assert by["t2"].start_h == pytest.approx(0.0)


def test_one_node_at_a_time_when_packing_fails():
    """Three 60 h tasks on 100 h GPUs: the MILP's 2 GPUs cannot hold them; one node is added."""
    wl = workload(100, *[{"work_h": 60} for _ in range(3)])
    rep = plan_capacity(wl, catalog(offer("g", price=1.0), offer("h", price=1.5)), alternatives=0)
    assert [r.change for r in rep.rounds] == ["sizing MILP", "+1 g"]
    assert rep.rounds[-1].proven and rep.cost == pytest.approx(300.0)


def test_relocation_makes_room():
    """A task that fits nowhere gets room when another task moves to a different node."""
    wl = workload(10, {"work_h": 8, "gpu_memory_gb": 70}, {"work_h": 6}, {"work_h": 4})
    cat = catalog(offer("x", mem=80), offer("y", mem=24))
    prep = prepare(wl, cat)
    sched = Schedule(prep, FleetNodes.of((1, 1)))
    sched.place(1, 0, (0.0, 0.0, (0,)))  # the 6 h task on x, leaving 4 h
    sched.place(2, 1, (0.0, 0.0, (0,)))  # the 4 h task on y, leaving 6 h
    assert not sched.insert(0)
    assert repair(sched, [0], [level_key(prep, None)]) == []
    assert sched.where[0][0] == 0 and sched.where[1][0] == 1
    assert check_schedule(wl, cat, {"x": 1, "y": 1}, rows(prep, sched)) == []


def test_random_workload_proves_and_checks():
    """A seeded mix of gangs and deadlines on two offers: proven, and the check agrees."""
    wl = _random_workload(120, seed=3)
    cat = _cat()
    prep = prepare(wl, cat)
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    nodes = tuple(next((f.nodes for f in rep.fleet if f.offer == o.name), 0) for o in cat.offers)
    proof = prove(prep, nodes)
    assert proof.ok
    counts = {o.name: n for o, n in zip(cat.offers, nodes, strict=True)}
    assert check_schedule(wl, cat, counts, rows(prep, proof.schedule)) == []


def test_two_runs_give_the_same_report():
    """Fixed solver settings and index tie-breaks: the same input gives the same report."""
    wl = _random_workload(150, seed=7)
    reps = [plan_capacity(wl, _cat(), alternatives=2).model_dump() for _ in range(2)]
    for rep in reps:
        rep["stats"] = {k: v for k, v in rep["stats"].items() if not k.endswith("_s")}
    assert reps[0] == reps[1]
    assert reps[0]["status"] == "proven"


def test_check_rejects_tampered_gang_schedules():
    """A proven schedule with gangs passes the check; each kind of tampering is caught."""
    wl = _random_workload(80, seed=11)
    cat = _cat()
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    nodes = {f.offer: f.nodes for f in rep.fleet}
    rws = [(a.task, a.offer, int(a.node.split("#")[1]), a.gpus, a.start_h, a.end_h) for a in rep.assignments]
    assert check_schedule(wl, cat, nodes, rws) == []
    tasks = {t.id: t for t in wl.tasks}
    k = next(i for i, r in enumerate(rws) if len(r[3]) >= 2)
    tid, o, n, g, s, e = rws[k]

    def swap(row):
        return [row if i == k else r for i, r in enumerate(rws)]

    assert any("GPUs" in m for m in check_schedule(wl, cat, nodes, swap((tid, o, n, g[:-1], s, e))))
    assert any("duration" in m for m in check_schedule(wl, cat, nodes, swap((tid, o, n, g, s, e + 1.0))))
    # put the gang on the GPUs and time of another task of its node: overlap
    other = next(r for r in rws if r[1] == o and r[2] == n and r[0] != tid and not set(r[3]) & set(g))
    moved = (tid, o, n, sorted(set(other[3]) | set(g[1:]))[: len(g)], other[4], other[4] + (e - s))
    assert any("overlap" in m or "deadline" in m for m in check_schedule(wl, cat, nodes, swap(moved)))
    # a type the task does not allow, and a node outside the fleet
    bad_type = next(r for r in rws if tasks[r[0]].gpu_memory_gb > 48 and r[1] == "big")
    j = rws.index(bad_type)
    tampered = [(*r[:1], "small", *r[2:]) if i == j else r for i, r in enumerate(rws)]
    assert any("needs" in m for m in check_schedule(wl, cat, nodes, tampered))
    assert any("not in the fleet" in m for m in check_schedule(wl, cat, nodes, swap((tid, o, 99, g, s, e))))
    assert any("not placed" in m for m in check_schedule(wl, cat, nodes, rws[1:]))

"""plan_capacity on small cases whose optimal fleet is known by hand."""

from __future__ import annotations

import pytest
from cap_helpers import catalog, offer, workload

from gpuplan.capacity import plan_capacity
from gpuplan.capacity.prepare import prepare
from gpuplan.capacity.prove import prove, rows
from gpuplan.capacity.schedule import check_schedule


def _nodes(rep) -> dict[str, int]:
    return {f.offer: f.nodes for f in rep.fleet}


def test_cheaper_per_gpu_hour_wins():
    """Two offers: the slower one is cheaper per unit of work, so it is chosen."""
    wl = workload(100, *[{"work_h": 40} for _ in range(4)])  # 160 reference GPU-hours
    cat = catalog(offer("fast", speed=2.0, price=5.0), offer("slow", speed=1.0, price=2.0))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    # slow: 2 GPUs x 100 h = 200 >= 160, cost 400; fast: 1 GPU x 200 ref-h, cost 500.
    assert _nodes(rep) == {"slow": 2}
    assert rep.cost == pytest.approx(400.0)
    assert rep.gap == pytest.approx(0.0)


def test_gang_of_eight_forces_eight_gpu_node():
    """A gang of 8 can only run on the 8-GPU offer even though 4-GPU nodes are cheaper per GPU."""
    wl = workload(10, {"work_h": 5, "gpus": 8}, {"work_h": 2})
    cat = catalog(offer("four", per_node=4, price=4.0), offer("eight", per_node=8, price=10.0))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    assert _nodes(rep) == {"eight": 1}
    placed = {a.task: a for a in rep.assignments}
    assert len(placed["t0"].gpus) == 8


def test_memory_forces_big_type():
    """A task needing 70 GB goes to the 80 GB type; the small work stays on the cheap 24 GB type."""
    wl = workload(10, {"work_h": 8, "gpu_memory_gb": 70}, {"work_h": 8, "gpu_memory_gb": 10})
    cat = catalog(offer("big", mem=80, price=3.0), offer("small", mem=24, price=1.0))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    assert _nodes(rep) == {"big": 1, "small": 1}
    assert rep.cost == pytest.approx(40.0)


def test_commit_discount_switches_choice():
    """A 40% discount from 2 committed nodes makes the pricier offer the cheaper fleet."""
    wl = workload(10, *[{"work_h": 10} for _ in range(2)])
    plain = catalog(offer("a", price=10.0), offer("b", price=8.0))
    assert _nodes(plan_capacity(wl, plain, alternatives=0)) == {"b": 2}
    disc = catalog(offer("a", price=10.0, commit_discount=0.4, commit_min_nodes=2), offer("b", price=8.0))
    rep = plan_capacity(wl, disc, alternatives=0)
    assert _nodes(rep) == {"a": 2}
    assert rep.fleet[0].committed
    assert rep.cost == pytest.approx(2 * 10.0 * 0.6 * 10)


def test_commit_minimum_not_worth_it():
    """With one node needed and a 3-node commitment minimum, on-demand is cheaper."""
    wl = workload(10, {"work_h": 10})
    cat = catalog(offer("a", price=10.0, commit_discount=0.5, commit_min_nodes=3))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert _nodes(rep) == {"a": 1}
    assert not rep.fleet[0].committed


def test_bin_packing_needs_a_second_round():
    """Three 60 h tasks on 100 h GPUs: the aggregate says 2 GPUs (200 h >= 180 h) but each GPU
    holds one task, so the proof fails and a round adds the third node."""
    wl = workload(100, *[{"work_h": 60} for _ in range(3)])
    rep = plan_capacity(wl, catalog(offer("g", price=1.0)), alternatives=0)
    assert rep.milp_bound == pytest.approx(200.0)
    assert rep.status == "proven"
    assert _nodes(rep) == {"g": 3}
    assert len(rep.rounds) >= 2
    assert not rep.rounds[0].proven and rep.rounds[0].n_failed >= 1
    assert rep.rounds[-1].proven


def test_deadline_levels_in_sizing():
    """Two 6 h tasks due at 6 h need two GPUs even though the horizon holds both on one."""
    wl = workload(100, {"work_h": 6, "deadline_h": 6}, {"work_h": 6, "deadline_h": 6})
    rep = plan_capacity(wl, catalog(offer("g", price=1.0)), alternatives=0)
    assert rep.status == "proven"
    assert _nodes(rep) == {"g": 2}
    assert rep.rounds[0].proven  # the deadline level makes the MILP exact here


def test_edf_order_meets_deadlines():
    """On one GPU, the urgent task runs first so both meet their deadlines."""
    wl = workload(20, {"work_h": 10}, {"work_h": 5, "deadline_h": 5})
    rep = plan_capacity(wl, catalog(offer("g", price=1.0)), alternatives=0)
    by = {a.task: a for a in rep.assignments}
    assert by["t1"].end_h == pytest.approx(5.0)
    assert by["t0"].end_h == pytest.approx(15.0)


def test_optional_tasks_do_not_size_fleet():
    """Optional work is placed only on the room left, and reported when it does not fit."""
    wl = workload(10, {"work_h": 10}, {"work_h": 10, "optional": True})
    rep = plan_capacity(wl, catalog(offer("g", price=1.0)), alternatives=0)
    assert _nodes(rep) == {"g": 1}
    assert [i.task for i in rep.optional_left_out] == ["t1"]


def test_alternatives_are_other_mixes():
    """Alternatives: the cheapest fleet without each chosen offer, costlier than the choice."""
    wl = workload(100, *[{"work_h": 40} for _ in range(4)])
    cat = catalog(offer("fast", speed=2.0, price=5.0), offer("slow", speed=1.0, price=2.0))
    rep = plan_capacity(wl, cat, alternatives=3)
    without = {a.without: a for a in rep.alternatives}
    assert without["slow"].fleet == {"fast": 1}
    assert without["slow"].cost == pytest.approx(500.0)
    assert all(a.cost >= rep.milp_bound - 1e-6 for a in rep.alternatives)
    assert all(a.fleet != {"slow": 2} for a in rep.alternatives)


def test_min_nodes_respected():
    """min_nodes forces nodes even when the work does not need them."""
    wl = workload(10, {"work_h": 1})
    cat = catalog(offer("a", price=1.0, min_nodes=2), offer("b", price=0.5))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert _nodes(rep)["a"] == 2


def test_proof_passes_independent_check():
    """The reported schedule passes check_schedule; a tampered one does not."""
    wl = workload(50, *[{"work_h": 10 + i, "gpus": 1 + i % 2, "deadline_h": 30 + i} for i in range(8)])
    cat = catalog(offer("g", per_node=2, price=1.0))
    rep = plan_capacity(wl, cat, alternatives=0)
    assert rep.status == "proven"
    nodes = {f.offer: f.nodes for f in rep.fleet}
    rws = [(a.task, a.offer, int(a.node.split("#")[1]), a.gpus, a.start_h, a.end_h) for a in rep.assignments]
    assert check_schedule(wl, cat, nodes, rws) == []
    t, o, n, g, s, e = rws[0]
    bad = [(t, o, n, g, s + 100, e + 100), *rws[1:]]
    assert any("deadline" in m for m in check_schedule(wl, cat, nodes, bad))
    wl2 = workload(50, {"work_h": 10}, {"work_h": 10})
    cat2 = catalog(offer("g", per_node=2, price=1.0))
    ok = [("t0", "g", 0, [0], 0.0, 10.0), ("t1", "g", 0, [0], 10.0, 20.0)]
    assert check_schedule(wl2, cat2, {"g": 1}, ok) == []
    clash = [("t0", "g", 0, [0], 0.0, 10.0), ("t1", "g", 0, [0], 5.0, 15.0)]
    assert any("overlap" in m for m in check_schedule(wl2, cat2, {"g": 1}, clash))
    off_fleet = [("t0", "g", 1, [0], 0.0, 10.0), ("t1", "g", 0, [1], 0.0, 10.0)]
    assert any("not in the fleet" in m for m in check_schedule(wl2, cat2, {"g": 1}, off_fleet))


def test_prove_reports_failures_on_too_small_fleet():
    """prove() on a fleet that is too small names the tasks that did not fit."""
    wl = workload(10, {"work_h": 8}, {"work_h": 8})
    prep = prepare(wl, catalog(offer("g")))
    proof = prove(prep, (1,))
    assert not proof.ok and len(proof.failed) == 1
    assert len(rows(prep, proof.schedule)) == 1

"""openb replayed in time: the online FIFO and SJF best-fit replays, the schedule checker, the metrics
and bounds on tiny hand-made clusters; the workload and the problem on a small slice of the trace
(skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import openb_time, openbdata
from benchmarks.openb_time import Workload, check_schedule, lower_bounds, metrics, replay, to_timed
from benchmarks.openbdata import NodeList, PodList

needs_data = pytest.mark.skipif(
    not openbdata.has_data(), reason="shared openb trace (../shared/data) not present"
)


def make_nodes(*rows: tuple[str, int, int, int, str]) -> NodeList:
    """Nodes from (sn, cpu_milli, memory_mib, gpu, model) rows."""
    sn, cpu, mem, gpu, model = zip(*rows, strict=True)
    return NodeList(list(sn), np.array(cpu), np.array(mem), np.array(gpu), list(model))


def make_pods(*rows: tuple[str, int, int, int, int, str]) -> PodList:
    """Pods from (name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec) rows."""
    name, cpu, mem, k, milli, spec = zip(*rows, strict=True)
    specs = [tuple(s.split("|")) if s else () for s in spec]
    return PodList("tiny", list(name), np.array(cpu), np.array(mem), np.array(k), np.array(milli), specs)


# n0: 2 T4 (8 cores, 16 GiB); n1: 1 P100 (4 cores, 8 GiB)
NODES = make_nodes(("n0", 8000, 16384, 2, "T4"), ("n1", 4000, 8192, 1, "P100"))


def tiny(rows: list[tuple[str, int, int, int, int, str, float, float]]) -> Workload:
    """A workload from (name, cpu_milli, memory_mib, num_gpu, gpu_milli, spec, release_h, duration_h)."""
    pods = make_pods(*(r[:6] for r in rows))
    release = np.array([r[6] for r in rows])
    duration = np.array([r[7] for r in rows])
    return Workload(NODES, pods, release, duration, {})


def by_name(w: Workload, order: str) -> dict[str, tuple[list[str], float, float]]:
    sched = to_timed(w, replay(w, order))
    assert check_schedule(w, sched) == []
    return sched


def test_fifo_and_sjf_order_the_queue() -> None:
    # "long" takes both T4s; "a-long" (3 h) and "b-short" (1 h) wait for them. FIFO starts the
    # earlier arrival first, SJF the shorter one.
    w = tiny(
        [
            ("long", 1000, 1024, 2, 1000, "T4", 0.0, 2.0),
            ("a-long", 1000, 1024, 2, 1000, "T4", 0.5, 3.0),
            ("b-short", 1000, 1024, 2, 1000, "T4", 1.0, 1.0),
        ]
    )
    fifo, sjf = by_name(w, "fifo"), by_name(w, "sjf")
    assert fifo["a-long"][1:] == (2.0, 5.0) and fifo["b-short"][1:] == (5.0, 6.0)
    assert sjf["b-short"][1:] == (2.0, 3.0) and sjf["a-long"][1:] == (3.0, 6.0)
    m_fifo, m_sjf = metrics(w, fifo), metrics(w, sjf)
    assert m_fifo["mean_jct_h"] == pytest.approx((2 + 4.5 + 5) / 3)
    assert m_sjf["mean_jct_h"] == pytest.approx((2 + 5.5 + 2) / 3)
    assert m_fifo["makespan_h"] == m_sjf["makespan_h"] == 6.0
    assert m_fifo["mean_wait_h"] == pytest.approx((0 + 1.5 + 4) / 3)


def test_no_head_of_line_blocking_and_sharing() -> None:
    # The gang cannot start while "half" holds a T4; the later small pods go around it, and share.
    w = tiny(
        [
            ("half", 1000, 1024, 1, 500, "T4", 0.0, 4.0),
            ("gang", 1000, 1024, 2, 1000, "T4", 0.1, 1.0),
            ("quarter", 1000, 1024, 1, 250, "T4", 0.2, 1.0),
            ("p100", 1000, 1024, 1, 1000, "P100", 0.3, 1.0),
        ]
    )
    s = by_name(w, "fifo")
    assert s["gang"][1] == 4.0  # waits for "half" to end
    assert s["quarter"][1] == 0.2 and s["p100"][1] == 0.3
    # best-fit packs the quarter next to the half share on the same T4
    assert s["quarter"][0] == s["half"][0]
    assert s["p100"][0] == ["n1/P100/0"]


def test_cpu_and_memory_hold_at_every_instant() -> None:
    # n1's 4 cores: two 3-core pods cannot overlap there, though its GPU has room for both
    w = tiny(
        [
            ("a", 3000, 1024, 1, 300, "P100", 0.0, 1.0),
            ("b", 3000, 1024, 1, 300, "P100", 0.0, 1.0),
        ]
    )
    s = by_name(w, "sjf")
    assert sorted(v[1] for v in s.values()) == [0.0, 1.0]


def test_replay_matches_a_plain_simulation() -> None:
    """The fast replay equals the obvious one (every event: the whole queue in order, each pod against
    every node) on random small workloads."""
    rng = np.random.default_rng(3)
    for trial in range(6):
        rows = []
        for i in range(40):
            k = int(rng.choice([1, 1, 1, 2]))
            milli = 1000 if k > 1 else int(rng.choice([250, 500, 1000]))
            spec = str(rng.choice(["", "", "T4", "P100"])) if k == 1 else "T4"
            rows.append(
                (
                    f"p{i}",
                    int(rng.integers(500, 3000)),
                    1024,
                    k,
                    milli,
                    spec,
                    float(rng.integers(0, 8)) / 2,
                    0.5 + float(rng.integers(0, 6)),
                )
            )
        w = tiny(rows)
        for order in ("fifo", "sjf"):
            assert by_name(w, order) == plain_replay(w, order), (trial, order)


def plain_replay(w: Workload, order: str) -> dict[str, tuple[list[str], float, float]]:
    """The replay written the slow, obvious way."""
    n = len(w)
    arrival = sorted(range(n), key=lambda p: (w.release_h[p], p))
    ranked = arrival if order == "fifo" else sorted(arrival, key=lambda p: w.duration_h[p])  # stable
    cluster = openbdata.Cluster(w.nodes)
    choose = openbdata.best_fit_chooser(w.nodes, w.pods)
    times = sorted(set(w.release_h.tolist()))
    out: dict[str, tuple[list[str], float, float]] = {}
    running: list[tuple[float, int, int, list[int]]] = []
    while len(out) < n:
        t = min(times[:1] + [e for e, *_ in running])
        for item in [r for r in running if r[0] <= t]:
            running.remove(item)
            _, p, i, gpus = item
            cluster.remove(
                i, gpus, int(w.pods.cpu_milli[p]), int(w.pods.memory_mib[p]), int(w.pods.gpu_milli[p])
            )
        times = [x for x in times if x > t]
        for p in ranked:
            if w.pods.name[p] in out or w.release_h[p] > t:
                continue
            args = (
                int(w.pods.cpu_milli[p]),
                int(w.pods.memory_mib[p]),
                int(w.pods.num_gpu[p]),
                int(w.pods.gpu_milli[p]),
            )
            ok = np.flatnonzero(cluster.feasible(*args, w.pods.gpu_spec[p]))
            if ok.size:
                i, gpus = choose(cluster, ok, p)
                cluster.place(i, gpus, args[0], args[1], args[3])
                end = t + float(w.duration_h[p])
                running.append((end, p, i, gpus))
                ids = [f"{w.nodes.sn[i]}/{w.nodes.model[i]}/{g}" for g in gpus]
                out[w.pods.name[p]] = (ids, t, end)
    return out


def test_checker_catches_every_broken_rule() -> None:
    w = tiny(
        [
            ("a", 1000, 1024, 1, 600, "T4", 0.0, 1.0),
            ("b", 1000, 1024, 1, 600, "T4", 0.0, 1.0),
            ("g", 1000, 1024, 2, 1000, "T4", 0.0, 1.0),
        ]
    )
    good = by_name(w, "fifo")
    assert check_schedule(w, good) == []

    def broken(**change: tuple[list[str], float, float]) -> list[str]:
        return check_schedule(w, {**good, **change})

    ga, gb = good["a"], good["b"]
    assert any("share" in e for e in broken(b=(ga[0], ga[1], ga[2])))  # 600 + 600 milli on one GPU
    assert any("before its release" in e for e in broken(a=(ga[0], -1.0, 0.0)))
    assert any("runs" in e for e in broken(a=(ga[0], ga[1], ga[1] + 0.5)))
    assert any("spec" in e for e in broken(b=(["n1/P100/0"], 5.0, 6.0)))
    assert any("spread" in e for e in broken(g=(["n0/T4/0", "n1/P100/0"], 5.0, 6.0)))
    assert any("unknown" in e for e in broken(b=(["n9/T4/0"], 5.0, 6.0)))
    assert any("asks for 2" in e for e in broken(g=(["n0/T4/0"], 5.0, 6.0)))
    assert any("not scheduled" in e for e in check_schedule(w, {k: v for k, v in good.items() if k != "a"}))
    # back to back on one GPU is fine, overlapping by a little is not
    g_end = good["g"][2]  # the gang holds both T4s until then
    assert broken(b=(ga[0], g_end, g_end + 1.0)) == []
    assert any("share" in e for e in broken(b=(ga[0], g_end - 0.01, g_end + 0.99)))
    assert gb[0] != ga[0]


def test_checker_counts_node_cpu_over_time() -> None:
    w = tiny([("a", 3000, 1024, 1, 300, "P100", 0.0, 1.0), ("b", 3000, 1024, 1, 300, "P100", 0.0, 1.0)])
    overlapping = {"a": (["n1/P100/0"], 0.0, 1.0), "b": (["n1/P100/0"], 0.5, 1.5)}
    assert any("CPU" in e for e in check_schedule(w, overlapping))


def test_lower_bounds_hold_for_the_replays() -> None:
    w = tiny(
        [
            ("long", 1000, 1024, 2, 1000, "T4", 0.0, 2.0),
            ("a", 1000, 1024, 2, 1000, "T4", 0.5, 3.0),
            ("b", 1000, 1024, 1, 1000, "", 1.0, 1.0),
        ]
    )
    lb = lower_bounds(w)
    assert lb["mean_jct_lb_h"] == pytest.approx(2.0)
    # 11 GPU-hours from time 0 on 3 GPUs (more than 0.5 + 7/3 from the second release, or 3.5)
    assert lb["makespan_lb_h"] == pytest.approx(11 / 3)
    for order in ("fifo", "sjf"):
        m = metrics(w, by_name(w, order))
        assert m["mean_jct_h"] >= lb["mean_jct_lb_h"] and m["makespan_h"] >= lb["makespan_lb_h"] - 1e-9


def test_compression_reaches_the_peak() -> None:
    release = np.array([0.0, 100.0, 200.0])
    duration = np.array([1.0, 1.0, 1.0])
    gpus = np.array([1.0, 1.0, 1.0])
    assert openb_time.peak_demand(release, duration, gpus) == 1.0
    c = openb_time.compression_for(release, duration, gpus, 3.0)
    assert openb_time.peak_demand(release / c, duration, gpus) == 3.0
    assert openb_time.peak_demand(release / (c * 0.9), duration, gpus) < 3.0
    with pytest.raises(ValueError, match="fewer than"):
        openb_time.compression_for(release, duration, gpus, 4.0)


# --------------------------------------------------------------------------------------------------
# A slice of the trace


@needs_data
def test_trace_slice_workload_and_replays() -> None:
    w = openb_time.workload(2, copies=2, first=300, first_nodes=30)
    assert len(w) == 2 * 2 * (300 - w.info["fit_no_node"]) and len(w.nodes) == 60
    assert np.all(np.diff(w.release_h) >= 0) and np.all(w.duration_h > 0)
    assert w.info["peak_demand_gpus"] >= 2.0 * w.info["gpus"]
    assert w.pods.name[0].endswith("#0") and w.pods.name[1].endswith("#1")  # copies interleaved
    lb = lower_bounds(w)
    results = {order: metrics(w, by_name(w, order)) for order in ("fifo", "sjf")}
    for m in results.values():
        assert m["pods"] == len(w)
        assert m["mean_jct_h"] >= lb["mean_jct_lb_h"] - 1e-9 and m["makespan_h"] >= lb["makespan_lb_h"] - 1e-9
        assert m["mean_wait_h"] > 0  # oversubscribed: someone waits
    assert results["sjf"]["mean_wait_h"] < results["fifo"]["mean_wait_h"]


@needs_data
def test_scheduled_problem_shape() -> None:
    w = openb_time.workload(1, 500.0, copies=1, first=50)
    problem = openb_time.scheduled_problem(workload_=w)
    assert problem["objective"] == {"kind": "completion_time"}
    assert len(problem["tasks"]) == len(w) and len(problem["nodes"]) == 1213
    for task, r, d in zip(problem["tasks"], w.release_h, w.duration_h, strict=True):
        assert "optional" not in task and task["weight"] == 1.0
        assert task["release_h"] == r and task["work_h"] == d
    assert w.info["compress"] == 500.0 and w.info["peak_target"] is None


@needs_data
def test_gpuplan_row_is_recorded() -> None:
    """gpuplan's row never crashes the run: an error is recorded with its message; a plan must be a
    valid schedule (start_h and end_h on every assignment)."""
    w = openb_time.workload(1, 500.0, copies=1, first=20, first_nodes=10)
    rec = openb_time.run_gpuplan(w, time_limit=5.0)
    assert rec["time_s"] is not None and rec["time_s"] > 0
    if "check" in rec:
        assert rec["check"] == "ok", rec["check"]
        assert rec["pods"] == len(w)
    else:
        assert rec["status"] == "error" and rec["error"], rec

"""GPU jobs from a real trace: the Alibaba openb pods (Weng et al., ATC'23) replayed in time.

    python -m benchmarks.openb_time --scale 1 --time-limit 60 --out benchmarks/results/openb-time-60s.jsonl
    python -m benchmarks.openb_time --scale 1,2,4 --baselines-only --out benchmarks/results/openb-time.jsonl
    python -m benchmarks.openb_time --markdown benchmarks/results/openb-time.jsonl

The workload: the GPU pods of `openb_pod_list_default.csv` that the trace scheduled (pods never
scheduled are left out), each with its trace duration, deletion - scheduled (not compressed), and
its creation time as its release, the arrival span compressed by `compress`. The trace gives no
GPU speeds, so a pod's duration is the same on every GPU type (`work_h`, every speed 1). Every pod
is required (a queue: they all run eventually); a pod that fits no node even on an empty cluster is
left out and counted. Objective: `completion_time`, weight 1, so Σ end = Σ JCT + Σ release and the
plan that minimizes it minimizes the mean JCT.

Oversubscription (how the trace is compressed). The scheduled GPU pods of the default list ask for
5,485 GPUs together, fewer than the 6,212 GPUs of the 1,213 GPU nodes: compressing arrivals alone
can never make them want more GPUs at once than the fleet has. So the trace is replayed `copies`
times: copy j of pod i arrives at the same (compressed) time as pod i, the copies interleaved in
arrival order. `compress` (default: `compression_for`) is the smallest two-digit factor at which the
peak demand, the GPUs wanted at once if every pod started at its release, reaches `peak` (default
TARGET_PEAK = 2) times the fleet's GPUs; `copies` defaults to `copies_for(peak)` = ceil(2 x peak), so
the copies together could ask for about 1.77 x the target and it is reached with arrivals still
spread (peak 2, 4, 8: 4, 8, 16 copies, each at compression 1,700, an arrival window of 2.1 h).
The offered load (GPU-hours over the arrival window, in fleet GPUs) is reported too, but it is no
measure of a queue here: 87% of the GPU-hours belong to 47 pods that run over 100 h, far past any
compressed window. `--scale k` takes k copies of the fleet and k times the pods, same compression:
the same load on a k times larger instance.

How deep the queue gets is set by the copies, not by the compression: with 4 copies FIFO's mean
wait is 0.19 h at compression 1,700 and only 0.35 h with all pods arriving at one instant (most
pods run minutes and free their GPUs fast), while 8 and 16 copies at compression 1,700 give 1.1 h
and 4.1 h. The default is peak 2 (4 copies): the GPUs wanted at the peak are twice the fleet's, and
at x4 the instance is already 99,248 pods on 4,852 nodes; 16 copies would make x4 397,000 pods,
beyond what the quadratic replays and a 60 s plan handle. Heavier settings are run at x1 with
`--peak 4` and `--peak 8` (benchmarks/README.md gives the figures).

Baselines (what a cluster does without a planner): online event-driven replays that, at every
arrival and completion, go through the queue and start every pod that fits now, on the node and GPUs
that `openbdata.best_fit` would choose; a pod that does not fit is skipped and the next one tried
(no head-of-line blocking, as the Kubernetes scheduler does). FIFO orders the queue by arrival,
SJF by duration (ties by arrival). They respect the rules gpuplan does: GPU shares <= 1 per GPU,
whole-GPU and multi-GPU pods alone on their GPUs, gangs on one node, node CPU and memory, `gpu_spec`.
Every schedule, the baselines' and gpuplan's, is checked by `check_schedule`, an independent sweep
over start and end events.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import openbdata
from benchmarks.openbdata import MILLI, NodeList, PodList

TARGET_PEAK = 2.0
"""Default compression: the peak demand (GPUs wanted at once if every pod started at its release)
reaches this many times the fleet's GPUs."""
COPIES_PER_PEAK = 2.0
"""Default copies: the trace's pods are replayed (interleaved) ceil(this x the peak target) times at
scale 1 (4 at the default peak of 2); see the module docstring."""


def copies_for(peak: float) -> int:
    """The default number of copies for a peak target (`COPIES_PER_PEAK`): all the copies' pods at
    once ask for about 1.77 x the target, so the target is reached with arrivals still spread."""
    return max(1, int(np.ceil(COPIES_PER_PEAK * peak - 1e-9)))


SECONDS_PER_HOUR = 3600.0


# --------------------------------------------------------------------------------------------------
# The workload


@dataclass(frozen=True, eq=False)
class Workload:
    """Pods in arrival order (release, then file order, then copy) with their release and duration in
    hours, on `nodes`; `info` says how it was built (counts, compression, offered load)."""

    nodes: NodeList
    pods: PodList
    release_h: np.ndarray
    duration_h: np.ndarray
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.pods)

    @property
    def gpu_amount(self) -> np.ndarray:
        """GPUs each pod holds while it runs (num_gpu x share)."""
        return self.pods.gpu_request_milli / MILLI


def read_times(pod_list: str = "default") -> dict[str, tuple[int, int | None, int]]:
    """Pod name -> (creation_time, scheduled_time or None when never scheduled, deletion_time), s."""
    path = openbdata.data_dir() / openbdata.POD_FILE.format(pod_list)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    need = ("name", "creation_time", "scheduled_time", "deletion_time")
    if rows and any(c not in rows[0] for c in need):
        raise ValueError(f"{path}: pod list without times (needs columns {', '.join(need)})")
    return {
        r["name"]: (
            int(r["creation_time"]),
            int(r["scheduled_time"]) if r["scheduled_time"].strip() else None,
            int(r["deletion_time"]),
        )
        for r in rows
    }


def _take(pods: PodList, rows: np.ndarray, names: list[str] | None = None) -> PodList:
    """The pods at `rows`, in that order (renamed to `names` when given)."""
    return PodList(
        pods.list_name,
        names if names is not None else [pods.name[i] for i in rows],
        pods.cpu_milli[rows],
        pods.memory_mib[rows],
        pods.num_gpu[rows],
        pods.gpu_milli[rows],
        [pods.gpu_spec[i] for i in rows],
    )


def fits_empty(nodes: NodeList, pods: PodList) -> np.ndarray:
    """Per pod: does some node of the empty cluster take it (CPU, memory, GPUs, model)?"""
    empty = openbdata.Cluster(nodes)
    return np.array(
        [
            empty.feasible(
                int(pods.cpu_milli[p]),
                int(pods.memory_mib[p]),
                int(pods.num_gpu[p]),
                int(pods.gpu_milli[p]),
                pods.gpu_spec[p],
            ).any()
            for p in range(len(pods))
        ],
        dtype=bool,
    )


def offered_load(release_h: np.ndarray, duration_h: np.ndarray, gpus: np.ndarray, fleet_gpus: int) -> float:
    """GPU-hours of all pods over the arrival window (last - first release), in fleet GPUs."""
    window = float(release_h.max() - release_h.min()) if release_h.size else 0.0
    return float((gpus * duration_h).sum()) / (window * fleet_gpus) if window > 0 else float("inf")


def peak_demand(release_h: np.ndarray, duration_h: np.ndarray, gpus: np.ndarray) -> float:
    """The most GPUs wanted at one instant if every pod ran from its release (no queueing)."""
    t = np.concatenate([release_h, release_h + duration_h])
    d = np.concatenate([gpus, -gpus])
    order = np.lexsort((d, t))  # at equal times ends (negative) before starts
    return float(np.cumsum(d[order]).max(initial=0.0))


def compression_for(
    release_h: np.ndarray, duration_h: np.ndarray, gpus: np.ndarray, target_gpus: float
) -> float:
    """The smallest factor of two significant digits (1.0 .. 9.9e6) that compresses the releases so
    that the peak demand (`peak_demand`) reaches `target_gpus`. Raises ValueError when even all
    pods at once fall short."""
    if float(gpus.sum()) < target_gpus:
        raise ValueError(
            f"the pods ask for {gpus.sum():.1f} GPUs in all, fewer than the {target_gpus:.1f} wanted at "
            "the peak: no compression oversubscribes the fleet that much (replay more copies)"
        )
    for exp in range(7):
        for m in range(10, 100):
            factor = m * 10.0 ** (exp - 1)
            if peak_demand(release_h / factor, duration_h, gpus) >= target_gpus:
                return factor
    raise ValueError(f"no factor up to 9.9e6 reaches a peak demand of {target_gpus:.1f} GPUs")


def workload(
    scale: int = 1,
    compress: float | None = None,
    *,
    copies: int | None = None,
    peak: float = TARGET_PEAK,
    pod_list: str = "default",
    first: int | None = None,
    first_nodes: int | None = None,
) -> Workload:
    """The replay instance: the scheduled GPU pods of `pod_list` (only the `first` of them in file
    order when given, for quick tests), `copies` (default `copies_for(peak)`) x `scale` interleaved
    copies, on `scale` copies of the GPU nodes, arrivals compressed by `compress` (default:
    `compression_for` the trace at scale 1, so every scale gets the same factor). `first_nodes`
    keeps only the first nodes of the node list (a small cluster for quick tests). Copy names get
    `#k` when there is more than one."""
    if copies is None:
        copies = copies_for(peak)
    if scale < 1 or copies < 1:
        raise ValueError(f"scale and copies must be >= 1 (got {scale}, {copies})")
    base_nodes = openbdata.read_nodes()
    if first_nodes is not None:
        keep = slice(0, first_nodes)
        base_nodes = NodeList(
            base_nodes.sn[keep],
            base_nodes.cpu_milli[keep],
            base_nodes.memory_mib[keep],
            base_nodes.gpu[keep],
            base_nodes.model[keep],
        )
    pods = openbdata.read_pods(pod_list)
    times = read_times(pod_list)
    rows = [p for p in np.flatnonzero(pods.is_gpu) if times[pods.name[p]][1] is not None]
    never_scheduled = int(pods.is_gpu.sum()) - len(rows)
    if first is not None:
        rows = rows[:first]
    rows_a = np.array(rows, dtype=np.int64)
    fits = fits_empty(base_nodes, _take(pods, rows_a))
    unfit = [pods.name[p] for p, ok in zip(rows, fits, strict=True) if not ok]
    rows_a = rows_a[fits]
    created = np.array([times[pods.name[p]][0] for p in rows_a], dtype=np.float64)
    ran = np.array([times[pods.name[p]][2] - times[pods.name[p]][1] for p in rows_a], dtype=np.float64)
    t0 = created.min() if created.size else 0.0
    span_h = float(created.max() - t0) / SECONDS_PER_HOUR if created.size else 0.0
    duration_h = ran / SECONDS_PER_HOUR
    amount = pods.gpu_request_milli[rows_a] / MILLI
    release_h = (created - t0) / SECONDS_PER_HOUR
    compress_given = compress is not None
    if compress is None:  # copies arrive together, so their peak demand is copies x one's
        compress = compression_for(release_h, duration_h, copies * amount, peak * base_nodes.total_gpus)
    release_h = release_h / compress
    # copies interleaved: arrival order by release, then trace order, then copy
    n, total = rows_a.size, copies * scale
    order = np.lexsort(
        (np.repeat(np.arange(total), n), np.tile(np.arange(n), total), np.tile(release_h, total))
    )
    src = np.tile(np.arange(n), total)[order]
    copy = np.repeat(np.arange(total), n)[order]
    names = [
        pods.name[rows_a[i]] if total == 1 else f"{pods.name[rows_a[i]]}#{c}"
        for i, c in zip(src, copy, strict=True)
    ]
    nodes, _ = openbdata.scale_data(base_nodes, _take(pods, rows_a[:0]), scale)
    out_release, out_duration = release_h[src], duration_h[src]
    out_amount = amount[src]
    info: dict[str, Any] = {
        "pod_list": pod_list,
        "scale": scale,
        "copies": copies,
        "trace_gpu_pods": int(pods.is_gpu.sum()),
        "never_scheduled": never_scheduled,
        "fit_no_node": len(unfit),
        "pods": len(names),
        "nodes": len(nodes),
        "gpus": nodes.total_gpus,
        "compress": compress,
        "peak_target": None if compress_given else peak,
        "trace_span_h": round(span_h, 3),
        "arrival_window_h": round(span_h / compress, 4),
        "offered_load": round(offered_load(out_release, out_duration, out_amount, nodes.total_gpus), 3),
        "peak_demand_gpus": round(peak_demand(out_release, out_duration, out_amount), 1),
        "gpu_hours": round(float((out_amount * out_duration).sum()), 1),
    }
    return Workload(nodes, _take(pods, rows_a[src], names), out_release, out_duration, info)


# --------------------------------------------------------------------------------------------------
# Online replays


@dataclass(frozen=True, eq=False)
class Schedule:
    """Per pod (in the workload's order): node index, GPU slots on it, start and end (hours)."""

    node: np.ndarray
    gpus: list[list[int]]
    start_h: np.ndarray
    end_h: np.ndarray


def replay(w: Workload, order: str = "fifo") -> Schedule:
    """The online best-fit replay, `order` "fifo" (queue by arrival) or "sjf" (by duration, ties by
    arrival). At each event time, pods that end then give their resources back first, pods that
    arrive then join the queue, and the queue is gone through once in order, every pod that fits
    starting now on best-fit's node and GPUs (one pass is exact: starts only take resources away).

    Fast and exact: after each pass no waiting pod fits anywhere, so at the next event a waiting pod
    can only fit on a node that a pod just left; those are tested for the whole queue at once
    (vectorized), and only new arrivals are tested against every node."""
    if order not in ("fifo", "sjf"):
        raise ValueError(f"order must be fifo or sjf (got {order!r})")
    nodes, pods, n = w.nodes, w.pods, len(w)
    arrivals = np.argsort(w.release_h, kind="stable")  # arrival order (ties: workload order)
    arrived_at = np.empty(n, dtype=np.int64)
    arrived_at[arrivals] = np.arange(n)
    by_rank = arrivals if order == "fifo" else np.lexsort((arrived_at, w.duration_h))
    rank = np.empty(n, dtype=np.int64)
    rank[by_rank] = np.arange(n)
    models = sorted(set(nodes.model))
    node_model = np.array([models.index(m) for m in nodes.model], dtype=np.int64)
    allowed = np.array([[not s or m in s for m in models] for s in pods.gpu_spec], dtype=bool).reshape(
        n, len(models)
    )
    r_cpu, r_mem = pods.cpu_milli[by_rank], pods.memory_mib[by_rank]
    r_k, r_milli, r_allowed = pods.num_gpu[by_rank], pods.gpu_milli[by_rank], allowed[by_rank]
    r_single = r_k == 1

    cluster = openbdata.Cluster(nodes)
    choose = openbdata.best_fit_chooser(nodes, pods)
    node_of = np.full(n, -1, dtype=np.int64)
    slots: list[list[int]] = [[] for _ in range(n)]
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    waiting = np.zeros(n, dtype=bool)  # by rank
    running: list[tuple[float, int]] = []

    def fits_on(changed: list[int], lo: int) -> np.ndarray:
        """Waiting pods of rank >= lo that fit on one of the `changed` nodes now."""
        sl = slice(lo, n)
        hit = np.zeros(n - lo, dtype=bool)
        for i in changed:
            gpu_ok = np.where(r_single[sl], r_milli[sl] <= cluster.max_free[i], r_k[sl] <= cluster.n_idle[i])
            hit |= (
                gpu_ok
                & (r_cpu[sl] <= cluster.cpu[i])
                & (r_mem[sl] <= cluster.mem[i])
                & r_allowed[sl, node_model[i]]
            )
        return hit & waiting[sl]

    def try_start(p: int, t: float) -> int:
        """Start pod p now on best-fit's choice; the node, or -1 when none fits."""
        cpu, mem = int(pods.cpu_milli[p]), int(pods.memory_mib[p])
        k, milli = int(pods.num_gpu[p]), int(pods.gpu_milli[p])
        ok = np.flatnonzero(cluster.feasible(cpu, mem, k, milli, pods.gpu_spec[p]))
        if ok.size == 0:
            return -1
        i, gpus = choose(cluster, ok, p)
        cluster.place(i, gpus, cpu, mem, milli)
        node_of[p], slots[p], start[p] = i, gpus, t
        end[p] = t + float(w.duration_h[p])
        heapq.heappush(running, (float(end[p]), p))
        return i

    nxt, n_waiting = 0, 0
    while nxt < n or n_waiting:
        t = min(
            float(w.release_h[arrivals[nxt]]) if nxt < n else np.inf, running[0][0] if running else np.inf
        )
        changed: list[int] = []
        while running and running[0][0] <= t:
            _, p = heapq.heappop(running)
            i = int(node_of[p])
            cluster.remove(
                i, slots[p], int(pods.cpu_milli[p]), int(pods.memory_mib[p]), int(pods.gpu_milli[p])
            )
            changed.append(i)
        changed = sorted(set(changed))
        new: list[int] = []
        while nxt < n and w.release_h[arrivals[nxt]] <= t:
            new.append(int(rank[arrivals[nxt]]))
            nxt += 1
        new.sort()
        # One pass in queue order over the candidates: the new arrivals, merged with the waiting pods
        # that fit a changed node (`old`, a mask over ranks lo..n-1, kept current: a start on a
        # changed node recomputes it, a start elsewhere cannot change it).
        lo, k_new = 0, 0
        old = fits_on(changed, 0) if changed and n_waiting else np.zeros(0, dtype=bool)
        while True:
            hit = np.flatnonzero(old)
            r_old = lo + int(hit[0]) if hit.size else n
            r_new = new[k_new] if k_new < len(new) else n
            if r_old == n and r_new == n:
                break
            if r_old < r_new:
                i = try_start(int(by_rank[r_old]), t)
                if i >= 0:
                    waiting[r_old] = False
                    n_waiting -= 1
                old, lo = old[r_old + 1 - lo :], r_old + 1
            else:
                k_new += 1
                i = try_start(int(by_rank[r_new]), t)
                if i < 0:
                    waiting[r_new] = True
                    n_waiting += 1
            if i >= 0 and i in changed:
                old = fits_on(changed, lo)
    return Schedule(node_of, slots, start, end)


# --------------------------------------------------------------------------------------------------
# Checking and measuring

TimedPlacement = dict[str, tuple[list[str], float, float]]
"""Pod name -> (ids of its GPUs, `<node>/<model>/<k>`; start_h; end_h): a schedule in the terms of a
gpuplan Plan, so baselines and plans are checked and measured alike."""


def to_timed(w: Workload, s: Schedule) -> TimedPlacement:
    """A replay's schedule as GPU ids and times."""
    nodes = w.nodes
    return {
        w.pods.name[p]: (
            [f"{nodes.sn[s.node[p]]}/{nodes.model[s.node[p]]}/{g}" for g in s.gpus[p]],
            float(s.start_h[p]),
            float(s.end_h[p]),
        )
        for p in range(len(w))
        if s.node[p] >= 0
    }


def plan_to_timed(plan: dict[str, Any]) -> TimedPlacement:
    """A gpuplan plan (as JSON) as GPU ids and times: each assignment's `gpus`, `start_h`, `end_h`."""
    return {a["task"]: (list(a["gpus"]), float(a["start_h"]), float(a["end_h"])) for a in plan["assignments"]}


def check_schedule(w: Workload, sched: TimedPlacement, eps_h: float = 1e-9) -> list[str]:
    """Every rule of the replay, checked from the raw trace and independently of the replays and of
    gpuplan: each pod exactly once, on num_gpu distinct known GPUs of one node and of an allowed model,
    starting at or after its release and running its duration; and at every instant (intervals
    [start, end), an end within eps_h before a start counts as before it) the shares on each GPU sum
    to <= 1000 milli and each node's CPU and memory fit. Returns the problems found (empty: valid)."""
    nodes, pods = w.nodes, w.pods
    gpu_at = {gid: (i, k) for i in range(len(nodes)) for k, gid in enumerate(nodes.gpu_ids(i))}
    pod_at = {name: p for p, name in enumerate(pods.name)}
    errors = [f"pod {name!r} is not in the workload" for name in sched if name not in pod_at]
    errors += [f"pod {pods.name[p]} is not scheduled" for p in range(len(pods)) if pods.name[p] not in sched]
    events: list[tuple[float, int, int, int, list[tuple[int, int]]]] = []  # time, 0 end / 1 start, pod, node
    for name, (gpu_ids, s, e) in sched.items():
        p = pod_at.get(name)
        if p is None:
            continue
        k, spec = int(pods.num_gpu[p]), pods.gpu_spec[p]
        if not (s >= w.release_h[p] - eps_h):
            errors.append(f"pod {name}: starts at {s} h before its release {w.release_h[p]} h")
        if not abs((e - s) - w.duration_h[p]) <= 1e-6 * max(1.0, w.duration_h[p]):
            errors.append(f"pod {name}: runs {e - s} h, its duration is {w.duration_h[p]} h")
        if len(gpu_ids) != k or len(set(gpu_ids)) != k:
            errors.append(f"pod {name}: asks for {k} GPU(s), placed on {gpu_ids}")
            continue
        where = [gpu_at.get(g) for g in gpu_ids]
        if None in where:
            errors.append(f"pod {name}: unknown GPU(s) in {gpu_ids}")
            continue
        node_ids = {i for i, _ in where}  # type: ignore[misc]
        if len(node_ids) != 1:
            errors.append(f"pod {name}: gang spread over {len(node_ids)} nodes")
            continue
        i = next(iter(node_ids))
        if spec and nodes.model[i] not in spec:
            errors.append(f"pod {name}: model {nodes.model[i]} not in its spec {'|'.join(spec)}")
        events.append((e - eps_h, 0, p, i, where))  # type: ignore[arg-type]
        events.append((s, 1, p, i, where))  # type: ignore[arg-type]
    events.sort(key=lambda ev: (ev[0], ev[1]))
    width = max(int(nodes.gpu.max(initial=0)), 1)
    used = np.zeros((len(nodes), width), dtype=np.int64)
    cpu = np.zeros(len(nodes), dtype=np.int64)
    mem = np.zeros(len(nodes), dtype=np.int64)
    for t, kind, p, i, where in events:
        sign = 1 if kind else -1
        cpu[i] += sign * pods.cpu_milli[p]
        mem[i] += sign * pods.memory_mib[p]
        for node, g in where:
            used[node, g] += sign * pods.gpu_milli[p]
        if not kind:
            continue
        if cpu[i] > nodes.cpu_milli[i] or mem[i] > nodes.memory_mib[i]:
            errors.append(
                f"node {nodes.sn[i]} at {t:.6f} h: CPU {cpu[i]}/{nodes.cpu_milli[i]} milli, "
                f"memory {mem[i]}/{nodes.memory_mib[i]} MiB"
            )
        for node, g in where:
            if used[node, g] > MILLI:
                errors.append(f"GPU {nodes.sn[node]}/{g} at {t:.6f} h: share {used[node, g]} milli > 1000")
    return errors


def metrics(w: Workload, sched: TimedPlacement) -> dict[str, Any]:
    """Mean and p99 JCT (end - release), mean and p99 wait (start - release), makespan (last end - first
    release) and GPU utilization (GPU-share-hours / (fleet GPUs x makespan)), in hours, over the pods
    scheduled; `pods` counts them."""
    at = {name: p for p, name in enumerate(w.pods.name)}
    rows = np.array([at[n] for n in sched if n in at], dtype=np.int64)
    if rows.size == 0:
        return {"pods": 0}
    start = np.array([sched[w.pods.name[p]][1] for p in rows])
    end = np.array([sched[w.pods.name[p]][2] for p in rows])
    release = w.release_h[rows]
    jct, wait = end - release, start - release
    makespan = float(end.max() - w.release_h.min())
    share_h = float((w.gpu_amount[rows] * (end - start)).sum())
    return {
        "pods": int(rows.size),
        "mean_jct_h": float(jct.mean()),
        "p99_jct_h": float(np.percentile(jct, 99)),
        "mean_wait_h": float(wait.mean()),
        "p99_wait_h": float(np.percentile(wait, 99)),
        "makespan_h": makespan,
        "gpu_utilization": share_h / (w.nodes.total_gpus * makespan) if makespan > 0 else None,
    }


def lower_bounds(w: Workload) -> dict[str, float]:
    """Bounds every schedule obeys: each JCT is at least its duration (so the mean and the p99 JCT are
    at least those of the durations); the makespan is at least the longest release + duration, and at
    least, for every release r, r + (GPU-hours released at or after r) / fleet GPUs (measured from the
    first release)."""
    r, d = w.release_h, w.duration_h
    order = np.argsort(r, kind="stable")
    after = np.cumsum((w.gpu_amount * d)[order][::-1])[::-1]  # GPU-hours released at or after r[order]
    r0 = float(r.min())
    return {
        "mean_jct_lb_h": float(d.mean()),
        "p99_jct_lb_h": float(np.percentile(d, 99)),
        "makespan_lb_h": max(float((r + d).max()), float((r[order] + after / w.nodes.total_gpus).max())) - r0,
    }


# --------------------------------------------------------------------------------------------------
# The gpuplan problem and its run


def scheduled_problem(
    scale: int = 1,
    compress: float | None = None,
    *,
    copies: int | None = None,
    first: int | None = None,
    first_nodes: int | None = None,
    time_limit: float = 60.0,
    workload_: Workload | None = None,
) -> dict[str, Any]:
    """The replay instance as a gpuplan Problem (a JSON-able dict): `openbdata.to_problem`'s fleet and
    tasks (share, gang, allowed types, CPU, memory), every task required, with `work_h` its trace
    duration (every GPU type at speed 1: the trace has no speeds), `release_h` its compressed arrival
    and `weight` 1, objective `completion_time` (Σ end = Σ JCT + Σ release). Give `workload_` to use
    one already built (the other arguments are then ignored)."""
    w = workload_
    if w is None:
        w = workload(scale, compress, copies=copies, first=first, first_nodes=first_nodes)
    problem, _ = openbdata.to_problem(w.nodes, w.pods, time_limit=time_limit)
    out = problem.model_dump(mode="json", exclude_defaults=True)
    if len(out["tasks"]) != len(w):
        raise AssertionError("to_problem dropped or added tasks")
    for task, r, d in zip(out["tasks"], w.release_h, w.duration_h, strict=True):
        task.pop("optional", None)
        task.update(work_h=float(d), release_h=float(r), weight=1.0)
    out["objective"] = {"kind": "completion_time"}
    return out


def _solve_child(problem_file: str, plan_file: str, time_limit: float) -> int:
    """The gpuplan run, in its own process: solve the problem file through the public API and write
    the plan; print one JSON object (status, peak memory of this process, the error if any)."""
    import gpuplan

    problem = json.loads(Path(problem_file).read_text())
    res: dict[str, Any]
    try:
        plan = gpuplan.solve(problem, time_limit_s=time_limit)
        Path(plan_file).write_text(json.dumps(plan.model_dump(mode="json")))
        res = {"status": plan.status.value}
    except Exception as exc:  # recorded, not raised: gpuplan may not schedule yet
        res = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res), flush=True)
    return 0


def run_gpuplan(w: Workload, time_limit: float) -> dict[str, Any]:
    """gpuplan on the workload in a child process timed as a whole (start to exit: imports, reading
    the JSON, solving, writing the plan), killed after `baselines.kill_after`; its plan checked by
    `check_schedule` and measured like the baselines'. Never raises for a failed run: the record
    says what happened."""
    from benchmarks.baselines import run_timed

    problem = scheduled_problem(workload_=w, time_limit=time_limit)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "problem.json", Path(tmp) / "plan.json"
        src.write_text(json.dumps(problem))
        cmd = [sys.executable, "-m", "benchmarks.openb_time", "--solve", str(src), str(dst)]
        res = run_timed([*cmd, "--time-limit", str(time_limit)], time_limit, cwd=openbdata.REPO_ROOT)
        plan = json.loads(dst.read_text()) if dst.exists() else None
    rec: dict[str, Any] = {
        "status": res.get("status"),
        "time_s": res.get("wall_s"),
        "peak_rss_mb": res.get("peak_rss_mb"),
    }
    if res.get("error") or res.get("note"):
        rec["error"] = res.get("error") or res.get("note")
    if plan is None:
        return rec
    rec.update(solver=plan.get("solver"), phases=plan.get("phases"), objective=plan.get("objective"))
    rec["bound"] = plan.get("bound")
    try:
        sched = plan_to_timed(plan)
    except (KeyError, TypeError, ValueError) as exc:
        rec["check"] = f"plan without start_h/end_h: {type(exc).__name__}: {exc}"
        return rec
    errors = check_schedule(w, sched)
    rec["check"] = "ok" if not errors else f"{len(errors)} problem(s): " + "; ".join(errors[:5])
    rec.update(metrics(w, sched))
    if plan.get("bound") is not None and len(w):
        # Σ end >= bound, so mean JCT >= (bound - Σ release) / n
        rec["mean_jct_bound_h"] = (float(plan["bound"]) - float(w.release_h.sum())) / len(w)
    return rec


# --------------------------------------------------------------------------------------------------
# The runner


def run_baseline(w: Workload, order: str) -> dict[str, Any]:
    """One online replay, timed (the replay itself, in this process), checked and measured."""
    t0 = time.perf_counter()
    sched = to_timed(w, replay(w, order))
    secs = time.perf_counter() - t0
    errors = check_schedule(w, sched)
    return {
        "time_s": round(secs, 3),
        "check": "ok" if not errors else f"{len(errors)} problem(s): " + "; ".join(errors[:5]),
        **metrics(w, sched),
    }


def run_scale(
    scale: int,
    *,
    compress: float | None,
    copies: int | None,
    time_limit: float,
    baselines_only: bool,
    first: int | None = None,
    first_nodes: int | None = None,
    peak: float = TARGET_PEAK,
) -> dict[str, Any]:
    """Everything at one scale: the workload, its lower bounds, FIFO and SJF, and gpuplan (unless
    `baselines_only`)."""
    from benchmarks.run_gap import git_commit

    t0 = time.perf_counter()
    w = workload(scale, compress, copies=copies, peak=peak, first=first, first_nodes=first_nodes)
    rec: dict[str, Any] = {**w.info, "build_s": round(time.perf_counter() - t0, 3), **lower_bounds(w)}
    rec["fifo"] = run_baseline(w, "fifo")
    rec["sjf"] = run_baseline(w, "sjf")
    rec["baselines_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    rec["time_limit_s"] = time_limit
    rec["gpuplan"] = (
        {"status": "not run (--baselines-only)"} if baselines_only else run_gpuplan(w, time_limit)
    )
    rec["commit"] = git_commit()
    return rec


def _hours(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(path: Path) -> str:
    """The report of a JSON-lines file written with --out: per scale the workload, then one row per
    method and one of lower bounds."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| scale | pods | nodes | GPUs | method | mean JCT h | p99 JCT h | mean wait h | p99 wait h |"
        " makespan h | GPU util | time s | peak MB | check |",
        "|" + "---|" * 14,
    ]
    notes = []
    for r in rows:
        lead = f"| x{r['scale']} | {r['pods']} | {r['nodes']} | {r['gpus']} |"
        for name, label in (("fifo", "FIFO best-fit"), ("sjf", "SJF best-fit"), ("gpuplan", "gpuplan")):
            m = r[name]
            if "mean_jct_h" not in m:
                status = (m.get("status") or "?") + (f": {m['error']}" if m.get("error") else "")
                status = " ".join(status.split())
                out.append(f"{lead} {label} | {status[:120]} |" + " |" * 8 + f" {m.get('check', '-')} |")
                continue
            util = "-" if m.get("gpu_utilization") is None else f"{100 * m['gpu_utilization']:.2f}%"
            peak = m.get("peak_rss_mb", r.get("baselines_peak_rss_mb"))
            out.append(
                f"{lead} {label} | {_hours(m['mean_jct_h'])} | {_hours(m['p99_jct_h'])} |"
                f" {_hours(m['mean_wait_h'])} | {_hours(m['p99_wait_h'])} | {_hours(m['makespan_h'])} |"
                f" {util} | {m['time_s']} | {'-' if peak is None else f'{peak:.0f}'} | {m['check']} |"
            )
        bound = r["gpuplan"].get("mean_jct_bound_h")
        out.append(
            f"{lead} lower bound | {_hours(max(r['mean_jct_lb_h'], bound or 0.0))} |"
            f" {_hours(r['p99_jct_lb_h'])} | 0 | 0 | {_hours(r['makespan_lb_h'])} | | | | |"
        )
        notes.append(
            f"x{r['scale']}: {r['copies']} copies x scale of the {r['pods'] // (r['copies'] * r['scale'])}"
            f" scheduled GPU pods ({r['never_scheduled']} never scheduled left out,"
            f" {r['fit_no_node']} fitting no node), compression {r['compress']:g}"
            f" (arrival window {r['arrival_window_h']} h of a"
            f" {r['trace_span_h']} h span), peak demand {r['peak_demand_gpus']} GPUs"
            f" ({r['peak_demand_gpus'] / r['gpus']:.2f} x the fleet), offered load {r['offered_load']}"
            f" x the fleet over the window, {r['gpu_hours']} GPU-hours."
        )
    commits = sorted({r.get("commit", "?") for r in rows})
    out += ["", *notes, "", f"Commit(s): {', '.join(commits)}."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="1", help="scales to run, comma-separated (1,2,4)")
    ap.add_argument("--time-limit", type=float, default=60.0, help="gpuplan's wall-clock limit in seconds")
    ap.add_argument(
        "--copies", type=int, default=None, help="replays of the pods at scale 1 (default: 2 x --peak)"
    )
    ap.add_argument(
        "--compress", type=float, default=None, help="arrival compression factor (default: --peak's rule)"
    )
    ap.add_argument(
        "--peak", type=float, default=TARGET_PEAK, help="peak demand the default compression reaches, x fleet"
    )
    ap.add_argument("--first", type=int, default=None, help="only the first N scheduled GPU pods (tests)")
    ap.add_argument("--first-nodes", type=int, default=None, help="only the first N GPU nodes (tests)")
    ap.add_argument("--baselines-only", action="store_true", help="FIFO and SJF only, gpuplan not run")
    ap.add_argument("--data", default=None, help="the shared folder (or its data subfolder)")
    ap.add_argument("--out", type=Path, default=None, help="append each record to this file as a JSON line")
    ap.add_argument("--markdown", type=Path, default=None, help="print a JSON-lines report as a table")
    ap.add_argument("--solve", nargs=2, metavar=("PROBLEM", "PLAN"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.solve:
        return _solve_child(args.solve[0], args.solve[1], args.time_limit)
    if args.markdown:
        print(markdown(args.markdown))
        return 0
    if args.data:
        openbdata.set_data_dir(args.data)
    if not openbdata.has_data():
        try:
            openbdata.data_dir()
        except openbdata.DataMissingError as exc:
            print(f"openb_time: {exc}", file=sys.stderr)
        return 2
    rc = 0
    for scale in (int(x) for x in args.scale.split(",")):
        rec = run_scale(
            scale,
            compress=args.compress,
            copies=args.copies,
            time_limit=args.time_limit,
            baselines_only=args.baselines_only,
            first=args.first,
            first_nodes=args.first_nodes,
            peak=args.peak,
        )
        line = json.dumps(rec)
        print(line, flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        if any(rec[m]["check"] != "ok" for m in ("fifo", "sjf")) or rec["gpuplan"].get("check", "ok") != "ok":
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())

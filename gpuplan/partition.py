"""A partitioned solve: the fleet and the batch cut into k parts, solved side by side, then repaired.

The idea is POP's (Narayanan et al., "Solving Large-Scale Granular Resource Allocation Problems
Efficiently with POP", SOSP 2021): a large allocation problem whose resources and jobs are
interchangeable in kind solves almost as well as k independent smaller ones, each with a random
1/k of the resources and of the jobs, and much faster. Here (the code is gpuplan's own):

1. `split_problem`: the nodes are dealt to k parts by shape (GPU types and counts, CPU, host memory,
   labels, bandwidth), each part taking a proportional share of every shape, the order within a
   shape random (seeded). Nodes holding the current GPUs of one running task stay in one part. The
   tasks are dealt by kind (gang size, share, what they may run on, priority, optional), each kind
   in proportion to the GPUs each part holds that the kind may use, sorted by size first so every
   part gets a similar mix; a running task (`current_gpus`) goes to the part holding its GPUs.
2. `solve_partitioned`: each part is a Problem of its nodes and tasks, solved by the ordinary
   strategy (`solve_fleet`) in a worker process (spawn context, at most `workers` at a time, the
   threads shared out), all by one deadline that leaves `reserve_s` for the repair. Meanwhile the
   parent compiles the whole problem and computes the whole program's lower bound (aggregated LP
   and packing bound).
3. The repair, on the whole program: the parts' placements are merged (they use disjoint nodes,
   so they add up to a feasible plan), then left-out required tasks are placed where they fit,
   ejection and swap moves place more while the reserve lasts, and the priority repair
   (`honour_priorities`) makes sure no task is left out where lower-priority work holds its room
   on any part. The plan is decoded on the whole program and checked by the one verifier.

The bound is the whole program's, so the gap is honest: the parts' own bounds bound only their
own sub-problems, and do not add up to a bound of the whole (a task may move between parts).

Refused with more than one part (InputError naming the field): the matrix form, scheduled
problems (release, deadline, due time, `after`, time criteria), and more parts than nodes.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.bounds.fleet import fleet_lower_bound, packing_bound
from gpuplan.errors import InputError
from gpuplan.heuristics.fleet_greedy import (
    FleetState,
    eject_improve,
    fit_kind,
    honour_priorities,
    state_of,
    swap_improve,
    task_order,
)
from gpuplan.interrupt import POLL_S, in_context, owned, past, requested, watching
from gpuplan.models import Plan, Problem, Status
from gpuplan.program.decode_fleet import decode_fleet
from gpuplan.program.fleet import FleetCompiled, compile_fleet
from gpuplan.program.priorities import TiersTooWide
from gpuplan.strategy.fleet import homeless_plan

#: Most parts one solve may be cut into.
MAX_PARTITIONS = 256
#: Share of the time limit kept for the repair, the decode and the verification of the whole plan.
RESERVE_SHARE = 0.1
#: Least time kept for them (seconds).
MIN_RESERVE_S = 1.0
#: How long past the parts' deadline the parent waits for a part before leaving its tasks to the
#: repair (seconds): a part's own solve holds its limit, this covers decoding and sending it back.
PART_GRACE_S = 2.0


# --------------------------------------------------------------------------------------------------
# What may be split


def refuse_unsupported(problem: Any, partitions: int) -> None:
    """InputError unless `problem` may be cut into `partitions` parts (module docstring)."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InputError("partitions", f"must be between 1 and {MAX_PARTITIONS} (got {partitions})")
    if partitions == 1:
        return
    if not isinstance(problem, Problem):
        raise InputError(
            "partitions",
            f"{partitions} parts: a partitioned solve takes a fleet problem (GPU types, nodes, tasks),"
            " not the matrix form",
        )
    where = problem.time_field()
    if where is not None:
        raise InputError(
            where,
            f"a scheduled problem (this field gives tasks times) cannot be solved in {partitions} parts:"
            " precedences and time windows link tasks across parts; solve it whole (partitions 1)",
        )
    if partitions > len(problem.nodes):
        raise InputError(
            "partitions",
            f"{partitions} parts but only {len(problem.nodes)} node(s): every part needs a node",
        )


# --------------------------------------------------------------------------------------------------
# The split


@dataclass(frozen=True)
class Split:
    """Which part each node and each task goes to (int arrays, in the problem's order)."""

    parts: int
    node_part: np.ndarray  # int64 [N]
    task_part: np.ndarray  # int64 [T]


def _deal(n: int, weights: np.ndarray, offset: int) -> np.ndarray:
    """Part of each of `n` items in a row: part p gets its share of `weights` (largest remainder),
    interleaved evenly along the row; ties go round from part `offset`, so that many small groups
    still spread evenly over the parts."""
    k = weights.size
    total = float(weights.sum())
    w = weights / total if total > 0 else np.full(k, 1.0 / k)
    exact = n * w
    quota = np.floor(exact).astype(np.int64)
    rotation = (np.arange(k) - offset) % k
    rest = n - int(quota.sum())
    if rest > 0:
        order = np.lexsort((rotation, -(exact - quota)))
        quota[order[:rest]] += 1
    label = np.repeat(np.arange(k), quota)
    pos = np.concatenate([(np.arange(q) + 0.5) / q for q in quota if q > 0]) if n else np.zeros(0)
    return label[np.lexsort((rotation[label], pos))]


def _node_units(problem: Problem) -> list[list[int]]:
    """Groups of nodes that must share a part: those holding the current GPUs of one running task
    (a node on its own otherwise), in the order of their first node."""
    n = len(problem.nodes)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    spans = [t.current_gpus for t in problem.tasks if t.current_gpus and len(t.current_gpus) > 1]
    if spans:
        node_of = _gpu_nodes(problem)
        for gpus in spans:
            first = root(node_of[gpus[0]])
            for g in gpus[1:]:
                other = root(node_of[g])
                if other != first:
                    parent[max(first, other)] = min(first, other)
                    first = min(first, other)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _gpu_nodes(problem: Problem) -> dict[str, int]:
    """GPU id -> index of its node."""
    out: dict[str, int] = {}
    for i, node in enumerate(problem.nodes):
        for gpu in node.gpus:
            out[gpu.id] = i
        for name, count in node.gpu_counts.items():
            for k in range(count):
                out[f"{node.id}/{name}/{k}"] = i
    return out


def _node_shape(problem: Problem, i: int) -> tuple[Any, ...]:
    """What makes two nodes interchangeable: GPUs by type (healthy or not), CPU, memory, labels."""
    node = problem.nodes[i]
    gpus: dict[tuple[str, bool], int] = {}
    for gpu in node.gpus:
        gpus[(gpu.type, gpu.healthy)] = gpus.get((gpu.type, gpu.healthy), 0) + 1
    for name, count in node.gpu_counts.items():
        gpus[(name, True)] = gpus.get((name, True), 0) + count
    return (
        tuple(sorted(gpus.items())),
        node.cpu_cores,
        node.memory_gb,
        tuple(sorted(node.labels.items())),
        node.bandwidth_gbps,
    )


def _task_kind(task: Any) -> tuple[Any, ...]:
    """What makes two tasks compete for the same GPUs: gang, share, where they may run, priority."""
    return (
        task.gpus,
        task.gpu_share,
        None if task.allowed_types is None else tuple(sorted(task.allowed_types)),
        tuple(sorted(task.forbidden_types)),
        max(task.gpu_memory_gb, task.min_gpu_memory_gb),
        tuple(sorted(task.node_selector.items())),
        task.same_type,
        task.priority,
        task.optional,
    )


def _room(problem: Problem, node_part: np.ndarray, parts: int) -> Any:
    """A function: task kind -> float [parts], the GPUs (nodes, for a CPU-only kind) of each part
    the kind may use, by type, GPU memory, labels and gang size (health aside): the weights of the
    task deal. An estimate for the deal only; where a task really fits is the program's business."""
    mem = {gt.name: gt.memory_gb for gt in problem.gpu_types}
    # (part, type, labels, GPUs on the node) -> GPUs
    count: dict[tuple[int, str, tuple[tuple[str, str], ...], int], int] = {}
    nodes: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}
    for i, node in enumerate(problem.nodes):
        part = int(node_part[i])
        labels = tuple(sorted(node.labels.items()))
        size = node.n_gpus
        nodes[(part, labels)] = nodes.get((part, labels), 0) + 1
        types = [g.type for g in node.gpus if g.healthy]
        for name, c in node.gpu_counts.items():
            types.extend([name] * c)
        for name in types:
            key = (part, name, labels, size)
            count[key] = count.get(key, 0) + 1
    cache: dict[tuple[Any, ...], np.ndarray] = {}

    def room(kind: tuple[Any, ...]) -> np.ndarray:
        if kind in cache:
            return cache[kind]
        gang, _, allowed, forbidden, need, selector, *_ = kind
        out = np.zeros(parts)

        def labels_ok(labels: tuple[tuple[str, str], ...]) -> bool:
            have = dict(labels)
            return all(have.get(k) == v for k, v in selector)

        if gang == 0:
            for (part, labels), c in nodes.items():
                if labels_ok(labels):
                    out[part] += c
        else:
            for (part, name, labels, size), c in count.items():
                if (
                    (allowed is None or name in allowed)
                    and name not in forbidden
                    and mem[name] + 1e-12 >= need
                    and size >= gang
                    and labels_ok(labels)
                ):
                    out[part] += c
        cache[kind] = out
        return out

    return room


def split_problem(problem: Problem, parts: int, seed: int = 0) -> Split:
    """Deal the nodes and tasks of `problem` to `parts` parts (module docstring, step 1); the same
    problem and seed always give the same split."""
    rng = np.random.default_rng(seed)
    node_part = np.zeros(len(problem.nodes), dtype=np.int64)
    by_shape: dict[tuple[Any, ...], list[list[int]]] = {}
    for unit in _node_units(problem):
        shape = tuple(sorted((_node_shape(problem, i) for i in unit), key=repr))
        by_shape.setdefault(shape, []).append(unit)
    offset = 0
    for units in by_shape.values():
        order = rng.permutation(len(units))
        for j, u in enumerate(order):
            node_part[units[u]] = (offset + j) % parts
        offset += len(units)
    task_part = np.zeros(len(problem.tasks), dtype=np.int64)
    node_of: dict[str, int] | None = None
    by_kind: dict[tuple[Any, ...], list[int]] = {}
    for t, task in enumerate(problem.tasks):
        if task.current_gpus:
            node_of = _gpu_nodes(problem) if node_of is None else node_of
            task_part[t] = node_part[node_of[task.current_gpus[0]]]
        else:
            by_kind.setdefault(_task_kind(task), []).append(t)
    room = _room(problem, node_part, parts)
    # parts with nodes (fewer groups of nodes than parts leave some empty): where a kind no GPU takes goes
    with_nodes = (np.bincount(node_part, minlength=parts) > 0).astype(np.float64)
    offset = 0
    for kind, rows in by_kind.items():
        members = np.array(rows, dtype=np.int64)
        tasks = [problem.tasks[t] for t in rows]
        size = np.array([(t.gpu_memory_gb, t.cpu_cores, t.memory_gb, t.work_h or 0.0) for t in tasks])
        # largest first (ties at random), then dealt in turn: each part gets a similar spread of sizes
        order = np.lexsort((rng.random(len(rows)), *(-size[:, j] for j in range(3, -1, -1))))
        weights = room(kind)
        task_part[members[order]] = _deal(len(rows), weights if weights.sum() > 0 else with_nodes, offset)
        offset += len(rows)
    return Split(parts, node_part, task_part)


def sub_problems(problem: Problem, split: Split) -> list[Problem]:
    """One Problem per part: its nodes and tasks, in the problem's order; the rest as in `problem`.
    A required task is optional there, one priority above every other task, so that a part that
    cannot place it (its GPUs may be in another part) still returns a plan for the rest; the repair
    places it on the whole fleet."""
    top = max((t.priority for t in problem.tasks), default=0) + 1
    tasks = [
        t if t.optional else t.model_copy(update={"optional": True, "priority": top}) for t in problem.tasks
    ]
    out = []
    for part in range(split.parts):
        nodes = [problem.nodes[i] for i in np.flatnonzero(split.node_part == part)]
        mine = [tasks[t] for t in np.flatnonzero(split.task_part == part)]
        out.append(problem.model_copy(update={"nodes": nodes, "tasks": mine}))
    return out


# --------------------------------------------------------------------------------------------------
# The parts, in worker processes

_PART_STOP: Any = None


def _init_part(stop: Any) -> None:
    """A worker process: Ctrl-C is the parent's to handle (it sets `stop`, which every part watches)."""
    global _PART_STOP
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _PART_STOP = stop


def _solve_part(
    index: int, sub: Problem, solver: str, end_wall: float, limit_s: float, threads: int, seed: int
) -> dict[str, Any]:
    """One part, solved by the ordinary strategy within `limit_s` and by `end_wall` (time.time());
    what comes back is small: the placements by id, the part's numbers, or its input error."""
    from gpuplan.strategy.fleet import solve_fleet

    began = time.monotonic()
    left = min(limit_s, end_wall - time.time())
    out: dict[str, Any] = {"index": index, "tasks": len(sub.tasks), "nodes": len(sub.nodes)}
    if left <= 0.05:
        return {**out, "status": "skipped", "placed": [], "wall_s": 0.0, "peak_mb": _peak_mb()}
    try:
        with watching(_PART_STOP):
            plan = solve_fleet(
                sub, solver=solver, time_limit_s=left, workers=threads, seed=seed, started=began
            )
    except InputError as exc:
        return {**out, "error": (exc.path, exc.message)}
    return {
        **out,
        "status": plan.status.value,
        "solver": plan.solver,
        "objective": plan.objective,
        "phases": plan.phases,
        "placed": [(a.task, a.gpus, a.node) for a in plan.assignments],
        "wall_s": round(time.monotonic() - began, 3),
        "peak_mb": _peak_mb(),
    }


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _Pool:
    """Kills a pool's worker processes (for `owned`: a second Ctrl-C leaves none behind)."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.pool = pool

    def kill(self) -> None:
        for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
            proc.kill()


@contextmanager
def _relay(stop: Any) -> Iterator[None]:
    """Within the block, a stop of the calling context is passed on to the workers' `stop`."""
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if requested():
                stop.set()
                return
            done.wait(POLL_S)

    thread = threading.Thread(target=in_context(watch), name="gpuplan-partition-stop", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def reserve_s(time_limit_s: float) -> float:
    """Time kept for the repair, decode and verification of the whole plan (at most half the limit)."""
    return min(0.5 * time_limit_s, max(MIN_RESERVE_S, RESERVE_SHARE * time_limit_s))


# --------------------------------------------------------------------------------------------------
# The whole solve


def solve_partitioned(
    problem: Problem,
    *,
    partitions: int,
    solver: str,
    time_limit_s: float,
    workers: int | None,
    seed: int,
    started: float,
    ray: str | None = None,
) -> Plan:
    """Solve `problem` in `partitions` parts side by side, then repair on the whole (module
    docstring). The time limit is wall-clock for the whole call; a stop returns the best plan so far.
    `ray`: a Ray address (`auto`): the parts run as Ray tasks there (`run_parts_ray`), not in local
    worker processes."""
    from gpuplan.program.verify import verify_timed

    refuse_unsupported(problem, partitions)
    workers = workers or os.cpu_count() or 1
    deadline = started + time_limit_s
    repair_from = deadline - reserve_s(time_limit_s)
    t_split = time.monotonic()
    split = split_problem(problem, partitions, seed)
    subs = sub_problems(problem, split)
    jobs = [(i, sub) for i, sub in enumerate(subs) if sub.tasks]
    stats: dict[str, bool | int | float | str] = {
        "partitions": partitions,
        "partition_split_s": round(time.monotonic() - t_split, 4),
    }
    results: list[dict[str, Any]] = []
    whole: list[Any] = []

    def during() -> None:  # the whole program and its bound, while the parts run
        whole.extend(_whole(problem, repair_from, stats))

    if jobs and ray is not None:
        results = run_parts_ray(jobs, solver, workers, seed, repair_from, during, stats, ray)
    elif jobs:
        results = run_parts(jobs, solver, workers, seed, repair_from, during, stats)
    else:
        during()
    c, bound = whole
    for r in results:
        if "error" in r:
            raise InputError(*r["error"])
    home = homeless_plan(c, solver, started)
    if home is not None:
        verify_timed(home, problem)
        return home
    return _repair(problem, c, bound, results, solver, started, deadline, stats)


def run_parts(
    jobs: list[tuple[int, Problem]],
    solver: str,
    workers: int,
    seed: int,
    until: float,
    during: Callable[[], None],
    stats: dict[str, bool | int | float | str],
) -> list[dict[str, Any]]:
    """Solve the parts `jobs` (index, sub-problem) in worker processes (spawn), at most `workers` at
    a time with the threads shared out, all by `until` (time.monotonic()): with more parts than
    processes, each part gets an equal share of the window per wave. `during()` runs here meanwhile.
    A stop of the calling context is passed on to the workers; their processes are killed on the
    way out (and by `kill_children`, on an abort)."""
    procs = min(workers, len(jobs))
    threads = max(1, workers // procs)
    waves = math.ceil(len(jobs) / procs)
    window = max(0.0, until - time.monotonic())
    end_wall = time.time() + window
    stats.update(partition_processes=procs, partition_threads=threads, partition_waves=waves)
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    pool = ProcessPoolExecutor(procs, mp_context=ctx, initializer=_init_part, initargs=(stop,))
    try:
        with owned(_Pool(pool)), _relay(stop):
            futures = [
                pool.submit(_solve_part, i, sub, solver, end_wall, window / waves, threads, seed)
                for i, sub in jobs
            ]
            during()
            return _collect(futures, until + PART_GRACE_S, stop, stats)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        _Pool(pool).kill()


#: How to get Ray when the parts run as Ray tasks.
RAY_HINT = "pip install 'gpuplan[ray]'"


def _ray(address: str) -> Any:
    """The `ray` module, connected to the cluster at `address` (`auto`: the one this machine belongs
    to; a driver already connected keeps its connection); InputError on `ray` when it cannot be."""
    try:
        import ray
    except ImportError:
        raise InputError("ray", f"Ray is not installed: {RAY_HINT}") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        except Exception as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InputError("ray", f"cannot connect to Ray at {address!r}: {first}") from None
    return ray


def run_parts_ray(
    jobs: list[tuple[int, Problem]],
    solver: str,
    workers: int,
    seed: int,
    until: float,
    during: Callable[[], None],
    stats: dict[str, bool | int | float | str],
    address: str,
) -> list[dict[str, Any]]:
    """`run_parts` as Ray tasks on the cluster at `address`, the `workers` threads shared out between
    the parts (each asks Ray for as many CPUs); Ray decides how many run at once. Every part ends by
    `until`, however late Ray starts it. A stop cancels the parts still running: their tasks go to
    the repair."""
    ray = _ray(address)
    threads = max(1, workers // len(jobs))
    window = max(0.0, until - time.monotonic())
    end_wall = time.time() + window
    task = ray.remote(num_cpus=threads, max_retries=0)(_solve_part)
    refs = [task.remote(i, sub, solver, end_wall, window, threads, seed) for i, sub in jobs]
    stats.update(partition_ray=True, partition_threads=threads)
    during()
    done: list[Any] = []
    pending = list(refs)
    while pending and time.monotonic() < until + PART_GRACE_S and not requested():
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S * 4)
        done.extend(ready)
    for ref in pending:
        ray.cancel(ref, force=True)
    stats["parts_missing"] = len(pending)
    return list(ray.get(done))


def _whole(problem: Problem, until: float, stats: dict[str, bool | int | float | str]) -> Any:
    """The whole problem's program and its lower bound (computed while the parts run)."""
    began = time.monotonic()
    try:
        c = compile_fleet(problem)
    except TiersTooWide:
        c = compile_fleet(problem, flat_tiers=True)  # priced as the tier-by-tier solve prices
        stats["flat_tiers"] = True
    stats["build_s"] = round(time.monotonic() - began, 4)
    began = time.monotonic()
    p = c.program
    bound: float | None = None
    lp = fleet_lower_bound(p, deadline=until)
    if np.isfinite(lp.bound):
        bound = float(lp.bound)
    packing = packing_bound(p, deadline=until)
    if packing is not None:
        bound = packing.bound if bound is None else max(bound, packing.bound)
    stats["bound_s"] = round(time.monotonic() - began, 4)
    return c, bound


def _collect(
    futures: list[Future[dict[str, Any]]], until: float, stop: Any, stats: dict[str, bool | int | float | str]
) -> list[dict[str, Any]]:
    """The parts' results; a part not back by `until` is told to stop, and one not back within
    PART_GRACE_S more is left out (its tasks go to the repair). A part that failed raises here."""
    done, pending = wait(futures, timeout=max(0.0, until - time.monotonic()))
    if pending:
        stop.set()
        more, pending = wait(pending, timeout=PART_GRACE_S)
        done |= more
    stats["parts_missing"] = len(pending)
    return [f.result() for f in futures if f in done]


def _merge(c: FleetCompiled, results: list[dict[str, Any]]) -> np.ndarray:
    """The parts' placements as one assignment of the whole program (by task, GPU and node ids)."""
    p = c.program
    assign = p.empty_assign()
    task_index = {tid: t for t, tid in enumerate(c.task_ids)}
    gpu_index = {gid: g for g, gid in enumerate(c.gpu_ids)}
    host = {c.node_ids[int(p.gpu_node[g])]: int(g) for g in np.flatnonzero(p.host)}
    for r in results:
        for task, gpus, node in r["placed"]:
            row = [gpu_index[g] for g in gpus] if gpus else [host[node]]
            assign[task_index[task], : len(row)] = row
    return assign


def _place_required(st: FleetState, deadline: float) -> int:
    """Left-out required tasks where they fit as things stand, greedy order; how many were placed."""
    p = st.p
    placed = 0
    stuck: set[tuple[Any, ...]] = set()
    for t in task_order(p, "gpu"):
        if st.assign[t, 0] >= 0 or p.optional[t] or past(deadline):
            continue
        kind = fit_kind(p, int(t))
        if kind in stuck:
            continue
        spot = st.best_spot(int(t))
        if spot is None:
            stuck.add(kind)
            continue
        st.place(int(t), spot)
        placed += 1
    return placed


def _repair(
    problem: Problem,
    c: FleetCompiled,
    bound: float | None,
    results: list[dict[str, Any]],
    solver: str,
    started: float,
    deadline: float,
    stats: dict[str, bool | int | float | str],
) -> Plan:
    """Merge the parts, place what they left out on the whole fleet, decode and verify."""
    from gpuplan.program.verify import verify_timed

    began = time.monotonic()
    p = c.program
    for r in sorted(results, key=lambda r: r["index"]):
        i = r["index"]
        stats[f"part{i}_tasks"], stats[f"part{i}_nodes"] = r["tasks"], r["nodes"]
        stats[f"part{i}_status"], stats[f"part{i}_s"] = r["status"], r["wall_s"]
        stats[f"part{i}_placed"], stats[f"part{i}_peak_mb"] = len(r["placed"]), r["peak_mb"]
        if r.get("solver"):
            stats[f"part{i}_solver"] = r["solver"]
            stats[f"part{i}_phases"] = ", ".join(r["phases"])
    assign = _merge(c, results)
    bad = [v for v in p.violations(assign) if not v.startswith("required task")]
    if bad:
        raise AssertionError(f"the parts' merged placements break the whole program: {bad[:3]}")
    merged_placed = int((assign[:, 0] >= 0).sum())
    merged_ok = not np.any((assign[:, 0] < 0) & ~p.optional)
    merged = p.objective(assign) if merged_ok else None
    incumbents = [] if merged is None else [(time.monotonic() - started, merged)]
    phases = [f"{len(results)} parts"]
    st = state_of(p, assign)
    moves_until = deadline - 0.5 * reserve_s(deadline - started)  # then the priority pass, decode, verify
    required = _place_required(st, deadline)
    if solver != "greedy" and not past(moves_until):
        eject_improve(st, moves_until)
        swap_improve(st, moves_until)
    assign = st.assign
    if p.optional.any():
        assign, _ = honour_priorities(p, assign)  # a full pass: the verifier's dominance rule
    placed = int((assign[:, 0] >= 0).sum())
    stats.update(
        merged_placed=merged_placed,
        repair_placed=placed - merged_placed,
        repair_required=required,
        repair_s=round(time.monotonic() - began, 4),
    )
    if placed > merged_placed:
        phases.append("repair")
    feasible = not np.any((assign[:, 0] < 0) & ~p.optional)
    if feasible:
        bad = p.violations(assign)
        if bad:
            raise AssertionError(f"the repaired plan breaks the whole program: {bad[:3]}")
        incumbents.append((time.monotonic() - started, p.objective(assign)))
    message = ""
    if c.stages > 1:
        bound = None  # stage 1's bound would claim the later stages optimal
        message = "a lexicographic objective solved in parts: the objective is stage 1's, no bound is claimed"
    if not feasible:
        message = "no plan placing every required task was found within the time limit"
    plan = decode_fleet(
        c,
        assign if feasible else None,
        Status.FEASIBLE if feasible else Status.UNKNOWN,
        bound,
        solver="partitioned",
        phases=phases,
        requested=solver,
        reason=(
            f"{len(results)} of {stats['partitions']} parts solved side by side ({solver}), merged and"
            " repaired on the whole fleet; bound: the whole program's LP and packing bounds"
        ),
        started=started,
        warm=merged,
        incumbents=incumbents,
        stats=stats,
        message=message,
    )
    verify_timed(plan, problem)
    return plan


__all__ = [
    "MAX_PARTITIONS",
    "Split",
    "refuse_unsupported",
    "reserve_s",
    "run_parts",
    "run_parts_ray",
    "solve_partitioned",
    "split_problem",
    "sub_problems",
]

"""Alibaba GPU cluster trace v2023 ("openb"): readers, the gpuplan Problem, two placement baselines, an
independent checker and fragmentation metrics.

The trace is the one of Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing Workloads with
Fragmentation Gradient Descent", USENIX ATC'23. The best-fit and random-fit baselines follow that
paper's description of them (the code here is our own). The benchmark is a static batch: every GPU
pod of a pod list is offered once, in file order, and a baseline skips a pod it cannot place.

The data are not part of this repository. They are looked up as `benchmarks.gapdata` does: in the
directory given to `set_data_dir` (a --data flag), in $GPUPLAN_SHARED, then in `<repo>/../shared/data`;
either the `shared` folder or its `data` subfolder may be named. The files sit in
`traces/alibaba-openb/` there.

Units are kept as in the trace: CPU in milli-cores, host memory in MiB, GPU in milli-GPUs (1000 = one
GPU). A placement (`Placement`) maps a pod name to the ids of its GPUs, `<node>/<model>/<k>`, the ids
gpuplan gives counted GPUs, so a gpuplan Plan and a baseline are checked and measured the same way.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gapdata import DataMissingError, find_shared_data
from gpuplan import GPUType, Node, Objective, Problem, SolveOptions, Task

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENB_SUBDIR = Path("traces") / "alibaba-openb"
NODE_FILE = "openb_node_list_gpu_node.csv"
ALL_NODE_FILE = "openb_node_list_all_node.csv"
"""Every node of the cluster: the GPU nodes and 310 nodes without GPUs (for the CPU-only pods)."""
POD_FILE = "openb_pod_list_{}.csv"

MILLI = 1000
"""Milli units per CPU core and per GPU."""

# GPU memory per model in GB. Pods never ask for GPU memory, so the value has no effect on placement;
# G2 and G3 are undisclosed internal models and get 16 GB only because a GPUType needs some memory.
GPU_MEMORY_GB = {
    "P100": 16.0,
    "T4": 16.0,
    "V100M16": 16.0,
    "V100M32": 32.0,
    "A10": 24.0,
    "G2": 16.0,
    "G3": 16.0,
}
DEFAULT_GPU_MEMORY_GB = 16.0

# Best-fit weights of the remaining CPU, host memory and GPU (each normalised by the largest node of
# the cluster). Equal thirds: every resource a pod takes counts alike. The ATC'23 simulator's best-fit
# uses CPU and GPU at 0.5 each and ignores memory; pass weights=(0.5, 0.0, 0.5) to get that.
BEST_FIT_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)

Placement = dict[str, list[str]]
"""Pod name -> ids of the GPUs it runs on (`<node>/<model>/<k>`), or for a CPU-only pod the name of
its node alone (`[<node>]`); pods left out are absent."""

CPU_POD_WEIGHT = 0.5e-3
"""With CPU-only pods, all of them together weigh this much in the objective (in GPUs): less than one
milli-GPU, the trace's unit, so gpuplan maximizes the GPU placed first and the CPU-only pods placed
second."""

_override: Path | None = None


class PlacementError(ValueError):
    """A placement breaks the trace's constraints (see `check_placement`)."""


# --------------------------------------------------------------------------------------------------
# Locating the data


def set_data_dir(path: str | os.PathLike[str] | None) -> None:
    """Use this directory (the `shared` folder or its `data` folder) instead of the default."""
    global _override
    _override = Path(path) if path else None


def data_dir() -> Path:
    """The `traces/alibaba-openb` directory; raises DataMissingError with a clear message when absent."""
    return find_shared_data(_override, OPENB_SUBDIR / NODE_FILE, "openb trace") / OPENB_SUBDIR


def has_data() -> bool:
    """True when the shared openb trace can be found."""
    try:
        data_dir()
    except DataMissingError:
        return False
    return True


def pod_list_names() -> list[str]:
    """Names of the pod lists present (`default` first, then alphabetical): cpu050, gpushare20, ..."""
    pattern = re.compile(r"^openb_pod_list_(.+)\.csv$")
    names = sorted(m.group(1) for p in data_dir().iterdir() if (m := pattern.match(p.name)))
    return sorted(names, key=lambda n: n != "default")


# --------------------------------------------------------------------------------------------------
# Readers


@dataclass(frozen=True, eq=False)
class NodeList:
    """GPU nodes: name, CPU (milli-cores), host memory (MiB), GPU count and GPU model, one row each."""

    sn: list[str]
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    gpu: np.ndarray
    model: list[str]

    def __len__(self) -> int:
        return len(self.sn)

    @property
    def total_gpus(self) -> int:
        return int(self.gpu.sum())

    def gpu_ids(self, i: int) -> list[str]:
        """Ids of node i's GPUs, as gpuplan names counted GPUs."""
        return [f"{self.sn[i]}/{self.model[i]}/{k}" for k in range(int(self.gpu[i]))]


@dataclass(frozen=True, eq=False)
class PodList:
    """Pods of one pod list in file order. `gpu_milli` is the share of each of the pod's `num_gpu` GPUs
    (1000 for multi-GPU pods, 0 for CPU-only ones); `gpu_spec` holds the allowed models (empty: any)."""

    list_name: str
    name: list[str]
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    num_gpu: np.ndarray
    gpu_milli: np.ndarray
    gpu_spec: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.name)

    @property
    def gpu_request_milli(self) -> np.ndarray:
        """GPU amount each pod asks for, in milli-GPUs (num_gpu x gpu_milli)."""
        return self.num_gpu * self.gpu_milli

    @property
    def is_gpu(self) -> np.ndarray:
        return self.num_gpu > 0


def _rows(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (has {reader.fieldnames})")
        return list(reader)


def _ints(rows: list[dict[str, str]], col: str, path: Path) -> np.ndarray:
    try:
        return np.array([int(r[col]) for r in rows], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"{path}: column {col}: {exc}") from None


def _first_duplicate(names: list[str]) -> str | None:
    counts = Counter(names)
    return next((n for n, c in counts.items() if c > 1), None)


def read_nodes(path: str | os.PathLike[str] | None = None, *, all_nodes: bool = False) -> NodeList:
    """Read a node list (default: the 1213 GPU nodes; `all_nodes`: all 1523, 310 without GPUs). Every
    node's GPUs are of one model."""
    path = Path(path) if path else data_dir() / (ALL_NODE_FILE if all_nodes else NODE_FILE)
    rows = _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model"))
    nodes = NodeList(
        sn=[r["sn"] for r in rows],
        cpu_milli=_ints(rows, "cpu_milli", path),
        memory_mib=_ints(rows, "memory_mib", path),
        gpu=_ints(rows, "gpu", path),
        model=[r["model"].strip() for r in rows],
    )
    if dup := _first_duplicate(nodes.sn):
        raise ValueError(f"{path}: duplicate node {dup!r}")
    bad = [
        nodes.sn[i]
        for i in range(len(nodes))
        if nodes.gpu[i] < 0 or (nodes.gpu[i] > 0) != bool(nodes.model[i])
    ]
    if bad:
        raise ValueError(
            f"{path}: {len(bad)} node(s) with a GPU count and model that disagree, e.g. {bad[0]}"
        )
    if np.any(nodes.cpu_milli < 0) or np.any(nodes.memory_mib < 0):
        raise ValueError(f"{path}: negative CPU or memory")
    return nodes


def read_pods(name_or_path: str | os.PathLike[str] = "default") -> PodList:
    """Read a pod list by name (`default`, `gpushare40`, ...) or path. The multigpu lists have only the
    first five columns; a missing `gpu_spec` means any model."""
    path = Path(name_or_path)
    if path.suffix != ".csv":
        path = data_dir() / POD_FILE.format(name_or_path)
    rows = _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"))
    m = re.match(r"^openb_pod_list_(.+)\.csv$", path.name)
    specs = [
        tuple(dict.fromkeys(s.strip() for s in (r.get("gpu_spec") or "").split("|") if s.strip()))
        for r in rows
    ]
    pods = PodList(
        list_name=m.group(1) if m else path.stem,
        name=[r["name"] for r in rows],
        cpu_milli=_ints(rows, "cpu_milli", path),
        memory_mib=_ints(rows, "memory_mib", path),
        num_gpu=_ints(rows, "num_gpu", path),
        gpu_milli=_ints(rows, "gpu_milli", path),
        gpu_spec=specs,
    )
    if dup := _first_duplicate(pods.name):
        raise ValueError(f"{path}: duplicate pod {dup!r}")
    k, g = pods.num_gpu, pods.gpu_milli
    bad = (k < 0) | ((k > 0) & ((g <= 0) | (g > MILLI))) | ((k > 1) & (g != MILLI))
    bad |= (pods.cpu_milli < 0) | (pods.memory_mib < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: {int(bad.sum())} pod(s) with a bad request, e.g. {pods.name[i]} (num_gpu={k[i]}, "
            f"gpu_milli={g[i]}; a GPU pod needs 0 < gpu_milli <= 1000, a multi-GPU pod 1000)"
        )
    return pods


def scale_data(nodes: NodeList, pods: PodList, scale: int) -> tuple[NodeList, PodList]:
    """`scale` copies of the cluster and of the pod list (the whole list repeated, in order); with
    scale > 1 every name gets a suffix `#k`, k = 0..scale-1. scale 1 returns the inputs."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1 (got {scale})")
    if scale == 1:
        return nodes, pods

    def names(xs: list[str]) -> list[str]:
        return [f"{x}#{k}" for k in range(scale) for x in xs]

    def rep(a: np.ndarray) -> np.ndarray:
        return np.tile(a, scale)

    big_nodes = NodeList(
        names(nodes.sn), rep(nodes.cpu_milli), rep(nodes.memory_mib), rep(nodes.gpu), nodes.model * scale
    )
    big_pods = PodList(
        pods.list_name,
        names(pods.name),
        rep(pods.cpu_milli),
        rep(pods.memory_mib),
        rep(pods.num_gpu),
        rep(pods.gpu_milli),
        pods.gpu_spec * scale,
    )
    return big_nodes, big_pods


# --------------------------------------------------------------------------------------------------
# The gpuplan problem


def to_problem(
    nodes: NodeList,
    pods: PodList,
    *,
    scale: int = 1,
    time_limit: float = 60.0,
    workers: int | None = None,
    seed: int = 0,
    cpu_pods: bool = False,
) -> tuple[Problem, dict[str, Any]]:
    """The GPU pods as optional tasks on the GPU nodes, objective "placed" (GPUs left unplaced).

    CPU-only pods are skipped (the node list holds GPU nodes only), unless `cpu_pods`: then they
    become optional CPU-only tasks (`gpus: 0`) and the objective weighs by work, a GPU pod's work
    being 1 h (so its weight is its GPUs, as before) and a CPU-only pod's CPU_POD_WEIGHT / (number
    of CPU-only pods): GPU placed first, then the CPU-only pods placed. A pod's gpu_spec keeps only models
    present in the node list; a pod whose spec names none of them stays in, restricted to its absent
    models (declared as GPU types no node holds), so nothing can take it. `info` counts all of this.
    CPU is given in cores (milli / 1000) and memory in GiB (MiB / 1024), on nodes and pods alike.
    """
    nodes, pods = scale_data(nodes, pods, scale)
    present = list(dict.fromkeys(m for m, g in zip(nodes.model, nodes.gpu, strict=True) if g > 0))
    present_set = set(present)
    dropped: Counter[str] = Counter()
    unplaceable: list[str] = []
    absent_types: dict[str, None] = {}
    tasks: list[Task] = []
    for i in np.flatnonzero(pods.is_gpu):
        spec = pods.gpu_spec[i]
        allowed: list[str] | None = None
        if spec:
            allowed = [m for m in spec if m in present_set]
            dropped.update(m for m in spec if m not in present_set)
            if not allowed:
                unplaceable.append(pods.name[i])
                allowed = list(spec)
                absent_types.update(dict.fromkeys(spec))
        k = int(pods.num_gpu[i])
        tasks.append(
            Task(
                id=pods.name[i],
                gpus=k,
                gpu_share=1.0 if k > 1 else int(pods.gpu_milli[i]) / MILLI,
                cpu_cores=int(pods.cpu_milli[i]) / MILLI,
                memory_gb=int(pods.memory_mib[i]) / 1024,
                allowed_types=allowed,
                optional=True,
                work_h=1.0,
            )
        )
    cpu_rows = np.flatnonzero(~pods.is_gpu) if cpu_pods else np.zeros(0, dtype=np.int64)
    cpu_work = CPU_POD_WEIGHT / max(cpu_rows.size, 1)
    tasks.extend(
        Task(
            id=pods.name[i],
            gpus=0,
            cpu_cores=int(pods.cpu_milli[i]) / MILLI,
            memory_gb=int(pods.memory_mib[i]) / 1024,
            optional=True,
            work_h=cpu_work,
        )
        for i in cpu_rows
    )
    gpu_types = [
        GPUType(name=m, memory_gb=GPU_MEMORY_GB.get(m, DEFAULT_GPU_MEMORY_GB))
        for m in [*present, *absent_types]
    ]
    fleet = [
        Node(
            id=nodes.sn[i],
            gpu_counts={nodes.model[i]: int(nodes.gpu[i])} if nodes.gpu[i] > 0 else {},
            cpu_cores=int(nodes.cpu_milli[i]) / MILLI,
            memory_gb=int(nodes.memory_mib[i]) / 1024,
        )
        for i in range(len(nodes))
    ]
    problem = Problem(
        gpu_types=gpu_types,
        nodes=fleet,
        tasks=tasks,
        objective=Objective(kind="placed", placed_weight="work" if cpu_pods else "gpu"),
        options=SolveOptions(time_limit_s=time_limit, workers=workers, seed=seed),
    )
    info: dict[str, Any] = {
        "pod_list": pods.list_name,
        "scale": scale,
        "pods": len(pods),
        "gpu_pods": len(tasks) - cpu_rows.size,
        "cpu_only_skipped": int((~pods.is_gpu).sum()) - cpu_rows.size,
        "gpu_requested": int(pods.gpu_request_milli.sum()) / MILLI,
        "nodes": len(nodes),
        "gpus": nodes.total_gpus,
        "spec_models_dropped": dict(dropped),
        "unplaceable_spec": unplaceable,
    }
    if cpu_pods:
        info["cpu_pods"] = int(cpu_rows.size)
        info["cpu_pod_weight"] = cpu_work
    return problem, info


def plan_to_placement(plan: Any) -> Placement:
    """The placement of a gpuplan Plan: task id -> GPU ids of its assignment (a CPU-only task: its node)."""
    return {a.task: list(a.gpus) or [a.node] for a in plan.assignments}


# --------------------------------------------------------------------------------------------------
# Baselines


class Cluster:
    """Free resources while pods are placed one by one: per node CPU, memory, and the free share of
    each GPU (-1 for slots beyond the node's GPU count), with the per-node summaries the filters use."""

    def __init__(self, nodes: NodeList) -> None:
        n, width = len(nodes), max(int(nodes.gpu.max(initial=0)), 1)
        self.nodes = nodes
        self.cpu = nodes.cpu_milli.copy()
        self.mem = nodes.memory_mib.copy()
        self.free = np.where(np.arange(width)[None, :] < nodes.gpu[:, None], MILLI, -1).astype(np.int64)
        self.max_free = self.free.max(axis=1) if n else np.zeros(0, np.int64)
        self.n_idle = nodes.gpu.copy()
        self.gpu_free = nodes.gpu * MILLI
        self._model = np.array(nodes.model, dtype=object)
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    def feasible(self, cpu: int, mem: int, k: int, milli: int, spec: tuple[str, ...]) -> np.ndarray:
        """Nodes that can take the pod now: CPU, memory, model, and a GPU with `milli` free (one-GPU
        pod) or k wholly free GPUs."""
        if spec not in self._masks:
            self._masks[spec] = np.isin(self._model, list(spec)) if spec else np.ones(len(self.cpu), bool)
        ok = self._masks[spec] & (self.cpu >= cpu) & (self.mem >= mem)
        return ok & (self.max_free >= milli if k == 1 else self.n_idle >= k)

    def place(self, i: int, gpus: list[int], cpu: int, mem: int, milli: int) -> None:
        self.cpu[i] -= cpu
        self.mem[i] -= mem
        self.free[i, gpus] -= milli
        row = self.free[i]
        self.max_free[i] = row.max()
        self.n_idle[i] = int((row == MILLI).sum())
        self.gpu_free[i] -= len(gpus) * milli

    def remove(self, i: int, gpus: list[int], cpu: int, mem: int, milli: int) -> None:
        """Give back what `place` took (a pod that ended, in the time replay of `openb_time`)."""
        self.place(i, gpus, -cpu, -mem, -milli)


def _baseline(nodes: NodeList, pods: PodList, choose: Any, cpu_pods: bool = False) -> Placement:
    """Offer each GPU pod (and with `cpu_pods` each CPU-only pod, by CPU and memory alone) in file
    order; `choose(cluster, feasible_nodes, pod_row)` returns the node and its GPU slots (none for a
    CPU-only pod). A pod with no feasible node is left out."""
    cluster = Cluster(nodes)
    out: Placement = {}
    for p in np.flatnonzero(pods.is_gpu | cpu_pods):
        cpu, mem = int(pods.cpu_milli[p]), int(pods.memory_mib[p])
        k, milli = int(pods.num_gpu[p]), int(pods.gpu_milli[p])
        ok = np.flatnonzero(cluster.feasible(cpu, mem, k, milli, pods.gpu_spec[p]))
        if ok.size == 0:
            continue
        i, gpus = choose(cluster, ok, p)
        cluster.place(i, gpus, cpu, mem, milli)
        out[pods.name[p]] = [f"{nodes.sn[i]}/{nodes.model[i]}/{g}" for g in gpus] if k else [nodes.sn[i]]
    return out


def best_fit(
    nodes: NodeList,
    pods: PodList,
    weights: tuple[float, float, float] = BEST_FIT_WEIGHTS,
    cpu_pods: bool = False,
) -> Placement:
    """Best-fit (Weng et al., ATC'23): each pod goes to the feasible node left with the least resources,
    scored as weights . (CPU, memory, GPU left after placement / the cluster's largest node's amount);
    ties go to the first node (the request is the same for every node, so this ranks nodes by what
    they have free now). On that node a one-GPU pod takes the fullest GPU it fits on (the first
    of equals), a k-GPU pod the first k idle GPUs. With `cpu_pods`, CPU-only pods are offered too
    and scored alike (their GPU term is the node's free GPU: GPU-less and full nodes come first)."""
    return _baseline(nodes, pods, best_fit_chooser(nodes, pods, weights), cpu_pods)


def best_fit_chooser(
    nodes: NodeList, pods: PodList, weights: tuple[float, float, float] = BEST_FIT_WEIGHTS
) -> Any:
    """Best-fit's choice, `choose(cluster, feasible_nodes, pod_row) -> (node, GPU slots)`, on its own
    so that the time replay (`benchmarks.openb_time`) places pods by the very same rule."""
    w_cpu, w_mem, w_gpu = weights
    cpu_max = max(int(nodes.cpu_milli.max(initial=0)), 1)
    mem_max = max(int(nodes.memory_mib.max(initial=0)), 1)
    gpu_max = max(int(nodes.gpu.max(initial=0)) * MILLI, 1)

    def choose(c: Cluster, ok: np.ndarray, p: int) -> tuple[int, list[int]]:
        k, milli = int(pods.num_gpu[p]), int(pods.gpu_milli[p])
        score = (
            w_cpu * (c.cpu[ok] - pods.cpu_milli[p]) / cpu_max
            + w_mem * (c.mem[ok] - pods.memory_mib[p]) / mem_max
            + w_gpu * (c.gpu_free[ok] - k * milli) / gpu_max
        )
        i = int(ok[np.argmin(score)])
        row = c.free[i]
        if k == 1:
            fits = np.where(row >= milli, row, MILLI + 1)
            return i, [int(np.argmin(fits))]
        return i, [int(g) for g in np.flatnonzero(row == MILLI)[:k]]

    return choose


def random_fit(nodes: NodeList, pods: PodList, seed: int = 0, cpu_pods: bool = False) -> Placement:
    """Random-fit (Weng et al., ATC'23): each pod goes to a uniformly random feasible node and, there, to
    a uniformly random GPU it fits on (one-GPU pod) or k random idle GPUs. Seeded, so reproducible.
    With `cpu_pods`, CPU-only pods are offered too (a random node with their CPU and memory)."""
    rng = np.random.default_rng(seed)

    def choose(c: Cluster, ok: np.ndarray, p: int) -> tuple[int, list[int]]:
        k, milli = int(pods.num_gpu[p]), int(pods.gpu_milli[p])
        i = int(ok[rng.integers(ok.size)])
        if k == 0:
            return i, []
        row = c.free[i]
        cand = np.flatnonzero(row >= milli) if k == 1 else np.flatnonzero(row == MILLI)
        return i, sorted(int(g) for g in rng.choice(cand, size=k, replace=False))

    return _baseline(nodes, pods, choose, cpu_pods)


# --------------------------------------------------------------------------------------------------
# Checking and measuring


def _gpu_index(nodes: NodeList) -> dict[str, tuple[int, int]]:
    return {gid: (i, k) for i in range(len(nodes)) for k, gid in enumerate(nodes.gpu_ids(i))}


def _gpu_use(nodes: NodeList, pods: PodList, placement: Placement) -> tuple[np.ndarray, list[str]]:
    """Used milli-GPU per GPU (nodes x widest node) and the problems found, checked from the raw data."""
    gpu_at = _gpu_index(nodes)
    node_at = {sn: i for i, sn in enumerate(nodes.sn)}
    pod_at = {name: p for p, name in enumerate(pods.name)}
    width = max(int(nodes.gpu.max(initial=0)), 1)
    used = np.zeros((len(nodes), width), dtype=np.int64)
    holders: dict[tuple[int, int], list[int]] = {}
    cpu = np.zeros(len(nodes), dtype=np.int64)
    mem = np.zeros(len(nodes), dtype=np.int64)
    errors: list[str] = []
    for name, gpu_ids in placement.items():
        p = pod_at.get(name)
        if p is None:
            errors.append(f"pod {name!r} is not in pod list {pods.list_name!r}")
            continue
        k, milli, spec = int(pods.num_gpu[p]), int(pods.gpu_milli[p]), pods.gpu_spec[p]
        if k == 0:
            if len(gpu_ids) != 1 or gpu_ids[0] not in node_at:
                errors.append(f"pod {name}: CPU-only pod placed on {gpu_ids}, not on one known node")
                continue
            cpu[node_at[gpu_ids[0]]] += pods.cpu_milli[p]
            mem[node_at[gpu_ids[0]]] += pods.memory_mib[p]
            continue
        if len(gpu_ids) != k:
            errors.append(f"pod {name}: asks for {k} GPU(s), placed on {len(gpu_ids)}")
            continue
        if len(set(gpu_ids)) != k:
            errors.append(f"pod {name}: a GPU is listed twice in {gpu_ids}")
            continue
        unknown = [g for g in gpu_ids if g not in gpu_at]
        if unknown:
            errors.append(f"pod {name}: unknown GPU(s) {unknown}")
            continue
        where = [gpu_at[g] for g in gpu_ids]
        node_ids = {i for i, _ in where}
        if len(node_ids) > 1:
            errors.append(f"pod {name}: gang spread over nodes {sorted(nodes.sn[i] for i in node_ids)}")
            continue
        i = where[0][0]
        if spec and nodes.model[i] not in spec:
            errors.append(
                f"pod {name}: model {nodes.model[i]} of node {nodes.sn[i]} not in its spec {'|'.join(spec)}"
            )
        cpu[i] += pods.cpu_milli[p]
        mem[i] += pods.memory_mib[p]
        for slot in where:
            used[slot] += milli
            holders.setdefault(slot, []).append(p)
    for i in np.flatnonzero(cpu > nodes.cpu_milli):
        errors.append(f"node {nodes.sn[i]}: CPU {cpu[i]} milli used > {nodes.cpu_milli[i]} available")
    for i in np.flatnonzero(mem > nodes.memory_mib):
        errors.append(f"node {nodes.sn[i]}: memory {mem[i]} MiB used > {nodes.memory_mib[i]} available")
    for (i, g), ps in holders.items():
        gid = f"{nodes.sn[i]}/{nodes.model[i]}/{g}"
        if used[i, g] > MILLI:
            errors.append(f"GPU {gid}: share {used[i, g]} milli used > 1000 ({len(ps)} pods)")
        whole = [pods.name[p] for p in ps if pods.gpu_milli[p] >= MILLI]
        if whole and len(ps) > 1:
            errors.append(f"GPU {gid}: whole-GPU pod {whole[0]} shares it with {len(ps) - 1} other pod(s)")
    return used, errors


def check_placement(nodes: NodeList, pods: PodList, placement: Placement) -> None:
    """Check a placement against the raw trace, independently of gpuplan: known pods and GPUs, each GPU
    pod on exactly num_gpu distinct GPUs of one node and of an allowed model, each CPU-only pod on one
    known node, node CPU and memory, GPU share <= 1000 milli, whole-GPU and multi-GPU pods alone on
    their GPUs. Raises PlacementError listing the problems (the first 10)."""
    _, errors = _gpu_use(nodes, pods, placement)
    _raise(errors)


def _raise(errors: list[str]) -> None:
    if errors:
        shown = "\n  ".join(errors[:10])
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise PlacementError(f"placement breaks {len(errors)} constraint(s):\n  {shown}{more}")


def metrics(nodes: NodeList, pods: PodList, placement: Placement) -> dict[str, Any]:
    """Pods and GPU amount placed (in GPUs), and the cluster's idle GPUs (no pod) and fragmented GPUs
    (0 < used share < 1000 milli). Raises PlacementError on an invalid placement."""
    used, errors = _gpu_use(nodes, pods, placement)
    _raise(errors)
    exists = np.arange(used.shape[1])[None, :] < nodes.gpu[:, None]
    pod_at = {name: p for p, name in enumerate(pods.name)}
    rows = np.array([pod_at[n] for n in placement], dtype=np.int64)
    return {
        "pods_placed": len(placement),
        "gpu_placed": int(pods.gpu_request_milli[rows].sum()) / MILLI,
        "gpus_idle": int((exists & (used == 0)).sum()),
        "gpus_fragmented": int((exists & (used > 0) & (used < MILLI)).sum()),
    }


def cpu_pods_placed(pods: PodList, placement: Placement) -> int:
    """Number of CPU-only pods in a placement."""
    pod_at = {name: p for p, name in enumerate(pods.name)}
    return sum(1 for name in placement if name in pod_at and pods.num_gpu[pod_at[name]] == 0)

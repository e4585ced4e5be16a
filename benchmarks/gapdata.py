"""Generalised assignment problem (GAP) instances: readers, best-known values, instance sets and a
generator of random instances of the Chu & Beasley / Yagiura types C, D and E.

The data are not part of this repository. They are looked up, in this order, in the directory given
to `set_data_dir` (the runner's --data flag), in $GPUPLAN_SHARED, and in `<repo>/../shared/data`.
Either the `shared` folder or its `data` subfolder may be named.

All values are MIN sense: agents are GPUs and jobs are tasks; `cost[i][j]` and `load[i][j]` are
agent-major, so the gpuplan matrix form (tasks x GPUs) is their transpose (see `to_matrix_json`).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "GPUPLAN_SHARED"

ORLIB_SMALL = [f"gap{k}" for k in range(1, 13)]
ORLIB_LARGE = ["gapa", "gapb", "gapc", "gapd"]
# Problem k (1-based) of gapa..gapd is, in Yagiura's naming, <type> + this suffix.
ORLIB_LARGE_SIZES = ["05100", "05200", "10100", "10200", "20100", "20200"]
SETS = ("orlib-small", "orlib-large", "yagiura", "yagiura-big")

_override: Path | None = None


class DataMissingError(FileNotFoundError):
    """The shared benchmark data could not be found."""


@dataclass(frozen=True, eq=False)
class GapInstance:
    """One GAP problem, agent-major: `cost[i][j]`, `load[i][j]` (m x n), `capacity[i]` (m)."""

    name: str
    m: int
    n: int
    cost: np.ndarray
    load: np.ndarray
    capacity: np.ndarray
    key: tuple[str, int] | None = field(default=None)
    """(instance, problem_index) of the best_known.csv row, or None (random instances)."""

    def __post_init__(self) -> None:
        if self.cost.shape != (self.m, self.n) or self.load.shape != (self.m, self.n):
            raise ValueError(f"{self.name}: cost/load must be {self.m}x{self.n}")
        if self.capacity.shape != (self.m,):
            raise ValueError(f"{self.name}: capacity must have {self.m} entries")

    @property
    def size(self) -> str:
        return f"{self.m}×{self.n}"


# --------------------------------------------------------------------------------------------------
# Locating the data


def set_data_dir(path: str | os.PathLike[str] | None) -> None:
    """Use this directory (the `shared` folder or its `data` folder) instead of the default."""
    global _override
    _override = Path(path) if path else None
    _best_known_table.cache_clear()


def find_shared_data(override: Path | None, probe: Path | str, what: str) -> Path:
    """The `shared/data` directory holding `probe`, from `--data`, $GPUPLAN_SHARED or <repo>/../shared
    (each may name the `shared` folder or its `data` subfolder); DataMissingError with a clear message
    when it is not there. Shared by every benchmark's data reader."""
    if override is not None:
        how, root = "--data", override
    elif os.environ.get(ENV_VAR):
        how, root = f"${ENV_VAR}", Path(os.environ[ENV_VAR])
    else:
        how, root = "default location", REPO_ROOT.parent / "shared" / "data"
    if (root / "data" / probe).exists():
        root = root / "data"
    if not (root / probe).exists():
        raise DataMissingError(
            f"{what} not found: {root / probe} does not exist ({how}). The data live outside the "
            f"repository, in <repo>/../shared/data; set ${ENV_VAR} or pass --data DIR to point at the "
            "shared folder (or its data subfolder)."
        )
    return root


def data_dir() -> Path:
    """The `shared/data` directory; raises DataMissingError with a clear message when absent."""
    return find_shared_data(_override, "gap", "GAP benchmark data")


def has_data() -> bool:
    """True when the shared GAP data can be found."""
    try:
        data_dir()
    except DataMissingError:
        return False
    return True


def gap_dir() -> Path:
    return data_dir() / "gap"


# --------------------------------------------------------------------------------------------------
# Readers


def _tokens(path: Path) -> np.ndarray:
    text = Path(path).read_text(encoding="ascii")
    try:
        return np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"{path}: not a file of whitespace-separated integers ({exc})") from None


def _problem(tok: np.ndarray, pos: int, path: Path, name: str, key: tuple[str, int] | None):
    """Parse one `m n c a b` block at tok[pos:]; returns (instance, next position)."""
    if pos + 2 > len(tok):
        raise ValueError(f"{path}: truncated before problem {name}")
    m, n = int(tok[pos]), int(tok[pos + 1])
    if m <= 0 or n <= 0:
        raise ValueError(f"{path}: bad size m={m} n={n} for {name}")
    need = 2 + 2 * m * n + m
    if pos + need > len(tok):
        raise ValueError(f"{path}: {name} ({m}x{n}) needs {need} numbers, only {len(tok) - pos} left")
    p = pos + 2
    cost = tok[p : p + m * n].reshape(m, n).copy()
    p += m * n
    load = tok[p : p + m * n].reshape(m, n).copy()
    p += m * n
    cap = tok[p : p + m].copy()
    return GapInstance(name, m, n, cost, load, cap, key), pos + need


def read_orlib(path: str | os.PathLike[str]) -> list[GapInstance]:
    """An OR-Library file (`P`, then P times `m n c a b`); problems are named `<file>-<k>`, k 1-based."""
    path = Path(path)
    tok = _tokens(path)
    stem = path.name.removesuffix(".txt")
    if len(tok) == 0:
        raise ValueError(f"{path}: empty file")
    count = int(tok[0])
    out, pos = [], 1
    for k in range(1, count + 1):
        inst, pos = _problem(tok, pos, path, f"{stem}-{k}", (stem, k))
        out.append(inst)
    if pos != len(tok):
        raise ValueError(f"{path}: {len(tok) - pos} numbers left over after {count} problems")
    return out


def read_yagiura(path: str | os.PathLike[str]) -> GapInstance:
    """A single-problem file from Yagiura's set (`m n c a b`, no leading count)."""
    path = Path(path)
    tok = _tokens(path)
    inst, pos = _problem(tok, 0, path, path.name, (path.name, 1))
    if pos != len(tok):
        raise ValueError(f"{path}: {len(tok) - pos} numbers left over after one {inst.size} problem")
    return inst


def read_solution(path: str | os.PathLike[str]) -> np.ndarray:
    """An assignment certificate: n integers, entry j = 0-based agent of job j."""
    return _tokens(Path(path))


# --------------------------------------------------------------------------------------------------
# Evaluation and conversion


def evaluate(inst: GapInstance, agent_of_job: np.ndarray | list[int]) -> tuple[int, bool, list[str]]:
    """Cost of an assignment (entry j = agent of job j) and whether it is feasible, with reasons."""
    x = np.asarray(agent_of_job, dtype=np.int64)
    problems: list[str] = []
    if x.shape != (inst.n,):
        return 0, False, [f"expected {inst.n} entries, got {x.size}"]
    if x.min() < 0 or x.max() >= inst.m:
        return 0, False, [f"agent index out of range 0..{inst.m - 1}"]
    jobs = np.arange(inst.n)
    cost = int(inst.cost[x, jobs].sum())
    used = np.bincount(x, weights=inst.load[x, jobs], minlength=inst.m)
    for i in np.flatnonzero(used > inst.capacity):
        problems.append(f"agent {i}: load {int(used[i])} > capacity {int(inst.capacity[i])}")
    return cost, not problems, problems


def task_id(j: int) -> str:
    return f"t{j}"


def gpu_id(i: int) -> str:
    return f"g{i}"


def to_matrix_json(inst: GapInstance) -> dict:
    """gpuplan's matrix form: tasks (jobs) x GPUs (agents), i.e. the transpose of the GAP data."""
    return {
        "matrix": {
            "cost": inst.cost.T.tolist(),
            "load": inst.load.T.tolist(),
            "capacity": inst.capacity.tolist(),
            "task_ids": [task_id(j) for j in range(inst.n)],
            "gpu_ids": [gpu_id(i) for i in range(inst.m)],
        }
    }


def assignment_from_plan(inst: GapInstance, plan: dict) -> np.ndarray | None:
    """Agent of each job from a gpuplan plan JSON, or None if some job is missing or unknown."""
    agents = {gpu_id(i): i for i in range(inst.m)}
    tasks = {task_id(j): j for j in range(inst.n)}
    x = np.full(inst.n, -1, dtype=np.int64)
    for a in plan.get("assignments") or []:
        j, gpus = tasks.get(a.get("task")), a.get("gpus") or []
        if j is None or len(gpus) != 1 or gpus[0] not in agents or x[j] != -1:
            return None
        x[j] = agents[gpus[0]]
    return None if (x < 0).any() else x


# --------------------------------------------------------------------------------------------------
# Names, best-known values and instance sets


def _large_name(stem: str, k: int) -> str:
    """gapa..gapd problem k -> Yagiura's name, e.g. ('gapd', 6) -> 'd20200'."""
    return stem[-1] + ORLIB_LARGE_SIZES[k - 1]


# Yagiura name -> OR-Library (file, problem index), e.g. "d20200" -> ("gapd", 6).
YAGIURA_TO_ORLIB = {_large_name(s, k): (s, k) for s in ORLIB_LARGE for k in range(1, 7)}
ORLIB_TO_YAGIURA = {f"{s}-{k}": name for name, (s, k) in YAGIURA_TO_ORLIB.items()}


def alias(name: str) -> str | None:
    """The other name of a gapa..gapd problem ('gapd-6' <-> 'd20200'), else None."""
    if name in ORLIB_TO_YAGIURA:
        return ORLIB_TO_YAGIURA[name]
    if name in YAGIURA_TO_ORLIB:
        s, k = YAGIURA_TO_ORLIB[name]
        return f"{s}-{k}"
    return None


def row_key(name: str) -> tuple[str, int]:
    """best_known.csv key (instance, problem_index) of an instance name.

    'gap1-1' -> ('gap1', 1); 'gapd-6' and 'd20200' -> ('gapd', 6); 'd10400' -> ('d10400', 1)."""
    if name in YAGIURA_TO_ORLIB:
        return YAGIURA_TO_ORLIB[name]
    mo = re.fullmatch(r"(gap(?:\d+|[a-d]))-(\d+)", name)
    if mo:
        return mo.group(1), int(mo.group(2))
    return name, 1


@cache
def _best_known_table() -> dict[tuple[str, int], tuple[int, bool]]:
    out: dict[tuple[str, int], tuple[int, bool]] = {}
    with open(gap_dir() / "best_known.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["sense"].strip() != "min":
                continue
            key = (row["instance"].strip(), int(row["problem_index"]))
            out[key] = (int(row["best_known"]), row["optimal_proven"].strip() == "yes")
    return out


def best_known() -> dict[tuple[str, int], tuple[int, bool]]:
    """MIN-sense best known values: (instance, problem_index) -> (value, proven optimal)."""
    return dict(_best_known_table())


def best_known_for(inst_or_name: GapInstance | str) -> tuple[int, bool] | None:
    """(value, proven) for an instance or a name, or None (e.g. random instances)."""
    if isinstance(inst_or_name, GapInstance):
        if inst_or_name.key is None:
            return None
        key = inst_or_name.key
    else:
        key = row_key(inst_or_name)
    return _best_known_table().get(key)


def yagiura_names() -> list[str]:
    """The 33 single-problem files in gap/large, smallest first."""
    large = gap_dir() / "large"
    names = [p.name for p in large.iterdir() if p.is_file() and re.fullmatch(r"[cde]\d{5,6}", p.name)]
    return sorted(names, key=lambda s: (int(s[3:]), int(s[1:3]), s[0]))


def _orlib_file(stem: str) -> list[GapInstance]:
    path = gap_dir() / "orlib" / f"{stem}.txt"
    if not path.is_file():
        raise DataMissingError(f"{path} not found")
    return read_orlib(path)


def load_instance(name: str) -> list[GapInstance]:
    """One name -> instances: 'gap1' (its 5 problems), 'gap1-3', 'gapd-6', 'd20200', 'e10400'."""
    if re.fullmatch(r"gap(\d+|[a-d])", name):
        return _orlib_file(name)
    stem, k = row_key(name)
    if stem.startswith("gap"):
        problems = _orlib_file(stem)
        if not 1 <= k <= len(problems):
            raise ValueError(f"{name}: {stem} has problems 1..{len(problems)}")
        return [problems[k - 1]]
    path = gap_dir() / "large" / name
    if not path.is_file():
        raise ValueError(
            f"unknown instance {name!r}: expected a set ({', '.join(SETS)}), gapN, gapN-K, "
            "or a file name in gap/large such as d10400"
        )
    return [read_yagiura(path)]


def instances(set_name: str) -> list[GapInstance]:
    """An instance set ('orlib-small', 'orlib-large', 'yagiura', 'yagiura-big') or a comma list of
    names and sets."""
    out: list[GapInstance] = []
    for part in (p.strip() for p in set_name.split(",")):
        if not part:
            continue
        if part == "orlib-small":
            for s in ORLIB_SMALL:
                out += _orlib_file(s)
        elif part == "orlib-large":
            for s in ORLIB_LARGE:
                out += _orlib_file(s)
        elif part in ("yagiura", "yagiura-big"):
            for nm in yagiura_names():
                inst = read_yagiura(gap_dir() / "large" / nm)
                if part == "yagiura" or inst.n >= 400:
                    out.append(inst)
        else:
            out += load_instance(part)
    return out


# --------------------------------------------------------------------------------------------------
# Random instances
#
# Sources: Chu & Beasley, "A genetic algorithm for the generalised assignment problem", Computers &
# OR 24 (1997) 17-23 (types C and D), and Laguna, Kelly, Gonzalez-Velarde & Glover, EJOR 82 (1995),
# as restated by Yagiura, Ibaraki & Glover, INFORMS J. Computing 16 (2004) 133-151 (type E):
#   C: a_ij ~ U{5..25}, c_ij ~ U{10..50},                 b_i = 0.8 * sum_j a_ij / m
#   D: a_ij ~ U{1..100}, c_ij = 111 - a_ij + U{-10..10},   b_i = 0.8 * sum_j a_ij / m
#   E: a_ij = 1 - 10 ln(x), x ~ U(0,1];  c_ij = 1000 / a_ij - 10 y, y ~ U[0,1];
#      b_i = max(0.8 * sum_j a_ij / m, max_j a_ij)
# Integer rounding follows the published files (checked against c/d/e*400..1600 in gap/large):
# b_i is rounded down; for E, a_ij is rounded down (P(a=1) = 1 - e^-0.1 = 0.095 as in the files),
# c_ij is rounded down and never below 0 (1000/a - c lies in [0, 11) in every E file, and c = 0
# only where a > 100). The max_j a_ij term of E never binds at these sizes.


def random_instance(kind: str, m: int, n: int, seed: int) -> GapInstance:
    """A fresh GAP instance of type 'c', 'd' or 'e' (MIN sense), named like 'd10400-s3'."""
    kind = kind.lower()
    if kind not in ("c", "d", "e"):
        raise ValueError(f"kind must be one of c, d, e (got {kind!r})")
    if m <= 0 or n <= 0:
        raise ValueError("m and n must be positive")
    rng = np.random.default_rng([seed, m, n, ord(kind)])
    if kind == "c":
        load = rng.integers(5, 25, size=(m, n), endpoint=True)
        cost = rng.integers(10, 50, size=(m, n), endpoint=True)
        cap = np.floor(0.8 * load.sum(axis=1) / m)
    elif kind == "d":
        load = rng.integers(1, 100, size=(m, n), endpoint=True)
        cost = 111 - load + rng.integers(-10, 10, size=(m, n), endpoint=True)
        cap = np.floor(0.8 * load.sum(axis=1) / m)
    else:
        x = 1.0 - rng.random(size=(m, n))  # U(0, 1]
        load = np.floor(1.0 - 10.0 * np.log(x)).astype(np.int64)
        y = rng.random(size=(m, n))  # U[0, 1)
        cost = np.maximum(0, np.floor(1000.0 / load - 10.0 * y)).astype(np.int64)
        cap = np.floor(np.maximum(0.8 * load.sum(axis=1) / m, load.max(axis=1)))
    name = f"{kind}{m:02d}{n}-s{seed}"
    return GapInstance(
        name, m, n, cost.astype(np.int64), load.astype(np.int64), cap.astype(np.int64), key=None
    )

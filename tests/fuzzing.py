"""Fuzzing the command line: valid documents for every input it reads, mutated, run through `main`.

Each target draws a valid document (problem, matrix form, plan for `show`, commands and simulated
fleet for `run` and `inventory`, capacity workload and catalog), then up to three mutations: a value
replaced by another JSON value or an extreme number, a key deleted or added, a list entry
duplicated, or the serialized bytes cut, doubled or given a stray byte. The command must exit 0, 2,
3 or 4 within its limit, with one error line for 2 and never a traceback (`check`).

`make test` runs a short, derandomized round (tests/cli/test_fuzz.py); a long campaign runs with

    .venv/bin/python -m tests.fuzzing --minutes 15 --out build/fuzz

and writes each distinct failure as one JSON case (`Case`) that tests/cli/test_fuzz.py replays
once copied under tests/data/fuzz/.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from gpuplan.cli import main

ROOT = Path(__file__).resolve().parent
CASES = ROOT / "data" / "fuzz"
#: Seconds a solve may take in a fuzz run, and the slack allowed on top for reading, checking, writing.
TIME_LIMIT_S = 0.5
SLACK_S = 20.0

# --- mutations -------------------------------------------------------------------------------------------

EXTREMES: list[Any] = [
    0,
    -1,
    1,
    0.5,
    -0.5,
    1e-300,
    1e15,
    -1e15,
    1e16,
    2**31,
    2**53,
    -(2**53),
    10**30,
    "",
    "x",
    "\n",
    "é",
    None,
    True,
    False,
    [],
    {},
    [1, 2],
]

#: Numbers a valid document may hold, from the ordinary to the edge of the limits.
INTS = [0, 1, 2, 3, 7, 64, 65, 1000, 100_000, 2**31 - 1]
FLOATS = [0.0, 1e-9, 0.001, 0.25, 1.0, 3.0, 1e6, 1e12, 1e15]

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=6),
    st.sampled_from(EXTREMES),
)
JSON_VALUES = st.recursive(
    _leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=6,
)


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in `doc` (the root included), as key/index tuples."""
    out = [here]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*here, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*here, i)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """`doc` after 0 to 3 structural mutations; with some luck, bytes (str) instead of a document."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(
            st.sampled_from(["number"] * 3 + ["value", "extreme", "delete", "duplicate", "add_key", "wrap"])
        )
        if not path:
            if op in ("value", "extreme"):
                doc = draw(JSON_VALUES)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        old = parent[key]
        if op == "number" and isinstance(old, int | float) and not isinstance(old, bool):
            # another number of the same kind: the document usually stays valid, only unusual
            parent[key] = draw(st.sampled_from(INTS if isinstance(old, int) else FLOATS))
        elif op in ("number", "value"):
            parent[key] = draw(JSON_VALUES)
        elif op == "extreme":
            parent[key] = copy.deepcopy(draw(st.sampled_from(EXTREMES)))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "add_key" and isinstance(parent[key], dict):
            parent[key][draw(st.text(max_size=8))] = draw(JSON_VALUES)
        elif op == "wrap":
            parent[key] = [parent[key]]
    if draw(st.integers(0, 9)) == 0:  # bytes-level damage
        raw = json.dumps(doc).encode()
        how = draw(st.sampled_from(["cut", "byte", "double"]))
        at = draw(st.integers(0, len(raw)))
        if how == "cut":
            raw = raw[:at]
        elif how == "byte":
            raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at:]
        else:
            raw = raw[:at] + raw
        return raw
    return doc


# --- valid documents -------------------------------------------------------------------------------------

_ids = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_hours = st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.5])


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid Problem as a dict: most fields of the model appear somewhere."""
    types = [
        {"name": "A", "memory_gb": 40, "cost_per_hour": 2.0, "power_w": 300, "speed": 1.0},
        {"name": "B", "memory_gb": 80, "cost_per_hour": 3.5, "speed": 2.0},
    ][: draw(st.integers(1, 2))]
    names = [t["name"] for t in types]
    nodes: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 3))):
        node: dict[str, Any] = {
            "id": f"n{i}",
            "gpu_counts": {draw(st.sampled_from(names)): draw(st.integers(0, 4))},
        }
        if draw(st.booleans()):
            node["gpus"] = [
                {
                    "id": f"n{i}-g{k}",
                    "type": draw(st.sampled_from(names)),
                    "healthy": draw(st.booleans()),
                    "temperature_c": draw(st.sampled_from([None, 50.0, 95.0])),
                }
                for k in range(draw(st.integers(1, 2)))
            ]
        if draw(st.booleans()):
            node["cpu_cores"] = draw(st.sampled_from([4, 16, 64]))
            node["memory_gb"] = draw(st.sampled_from([32, 256]))
        if draw(st.booleans()):
            node["labels"] = {"zone": draw(st.sampled_from(["x", "y"]))}
        if draw(st.booleans()):
            node["bandwidth_gbps"] = draw(st.sampled_from([1.0, 100.0]))
        nodes.append(node)
    scheduled = draw(st.booleans())
    tasks: list[dict[str, Any]] = []
    for k in range(draw(st.integers(0, 6))):
        gpus = draw(st.sampled_from([0, 1, 1, 1, 2]))
        task: dict[str, Any] = {"id": f"t{k}", "gpus": gpus, "work_h": draw(_hours)}
        if gpus == 1:
            task["gpu_share"] = draw(st.sampled_from([0.25, 0.5, 1.0]))
        if gpus:
            task["gpu_memory_gb"] = draw(st.sampled_from([0, 10, 50]))
            if draw(st.booleans()):
                task["allowed_types"] = [draw(st.sampled_from(names))]
            if draw(st.integers(0, 3)) == 0:
                task["duration_h"] = {names[0]: draw(_hours)}
        task["cpu_cores"] = draw(st.sampled_from([0, 1, 8]))
        task["priority"] = draw(st.integers(0, 3))
        task["optional"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            task["node_selector"] = {"zone": "x"}
        if draw(st.integers(0, 3)) == 0:
            task["anti_affinity"] = "grp"
        if draw(st.integers(0, 3)) == 0:
            task["input_gb"], task["dataset"] = 5.0, draw(st.sampled_from([None, "ds"]))
        if scheduled:
            task["release_h"] = draw(st.sampled_from([0.0, 1.0, 2.0]))
            if draw(st.booleans()):
                task["deadline_h"] = task["release_h"] + draw(st.sampled_from([2.0, 10.0]))
            if draw(st.booleans()):
                task["due_h"] = draw(st.sampled_from([1.0, 5.0]))
            if k and draw(st.booleans()):
                task["after"] = [f"t{draw(st.integers(0, k - 1))}"]
        tasks.append(task)
    doc: dict[str, Any] = {"gpu_types": types, "nodes": nodes, "tasks": tasks}
    if draw(st.booleans()):
        doc["horizon_h"] = draw(st.sampled_from([4.0, 24.0]))
    kind = draw(
        st.sampled_from(
            ["cost", "energy", "balance", "gpus_used", "placed", "makespan", "weighted", "lexicographic"]
        )
    )
    objective: dict[str, Any] = {"kind": kind}
    if kind in ("weighted", "lexicographic"):
        objective["terms"] = [
            {"kind": "cost", "weight": 1.0},
            {"kind": draw(st.sampled_from(["gpus_used", "completion_time", "placed"])), "weight": 2.0},
        ]
    doc["objective"] = objective
    doc["options"] = {
        "seed": draw(st.integers(0, 3)),
        "solver": draw(st.sampled_from(["auto", "greedy", "cpsat"])),
    }
    return doc


@st.composite
def matrix_problems(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid matrix form (one or two resources, some nulls, optional ids)."""
    from tests.strategies import matrices

    doc = draw(matrices(max_tasks=6, max_gpus=4))
    if draw(st.booleans()):
        m = doc["matrix"]
        m["task_ids"] = [f"t{i}" for i in range(len(m["cost"]))]
        m["gpu_ids"] = [f"g{i}" for i in range(len(m["cost"][0]))]
    return doc


_PLANS: list[dict[str, Any]] = []


def base_plans() -> list[dict[str, Any]]:
    """Plans of the example problems (greedy, computed once): the valid documents `show` reads."""
    if not _PLANS:
        from gpuplan import solve

        for name in ("cluster.json", "queue.json", "cpu_tasks.json", "overloaded.json"):
            data = json.loads((ROOT.parent / "examples" / name).read_text())
            _PLANS.append(json.loads(solve(data, solver="greedy", time_limit_s=2).model_dump_json()))
    return _PLANS


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    return copy.deepcopy(draw(st.sampled_from(base_plans())))


@st.composite
def sim_fleets(draw: st.DrawFn) -> dict[str, Any]:
    """A simulated fleet with a short script."""
    n = draw(st.integers(1, 4))
    gpus = [
        {
            "id": f"g{k}",
            "uuid": f"GPU-{k:04d}",
            "model": "A100",
            "memory_gb": 80,
            "temperature_c": draw(st.sampled_from([30.0, 60.0])),
            "utilization": draw(st.sampled_from([0.0, 50.0])),
        }
        for k in range(n)
    ]
    script = [
        {
            "at_s": draw(st.sampled_from([0.0, 0.2, 5.0])),
            "gpu": f"g{draw(st.integers(0, n - 1))}",
            draw(st.sampled_from(["fail", "temperature_c", "ecc_errors", "xid"])): draw(
                st.sampled_from([True, 95.0, 3, 79])
            ),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    for event in script:  # each field its own type
        if "fail" in event:
            event["fail"] = True
        for name in ("ecc_errors", "xid"):
            if name in event:
                event[name] = 3
        if "temperature_c" in event:
            event["temperature_c"] = 95.0
    return {"node": "sim0", "gpus": gpus, "script": script}


EXECUTOR = ROOT / "data" / "executor"


@st.composite
def run_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """The four documents of `gpuplan run`: problem, plan, commands and the simulated fleet."""
    from gpuplan import solve

    problem = json.loads((EXECUTOR / "problem4.json").read_text())
    if not _RUN_PLAN:
        _RUN_PLAN.append(json.loads(solve(problem, solver="greedy", time_limit_s=2).model_dump_json()))
    commands = {
        "tasks": {
            t["id"]: {"argv": [sys.executable, "-c", "pass"], "max_retries": draw(st.integers(0, 1))}
            for t in problem["tasks"]
        }
    }
    sim = json.loads((EXECUTOR / "sim4.json").read_text())
    return {"problem": problem, "plan": copy.deepcopy(_RUN_PLAN[0]), "commands": commands, "devices": sim}


_RUN_PLAN: list[dict[str, Any]] = []


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    tasks = [
        {
            "id": f"w{k}",
            "work_h": draw(st.sampled_from([1.0, 6.0, 20.0])),
            "gpus": draw(st.sampled_from([1, 2, 8])),
            "gpu_memory_gb": draw(st.sampled_from([0, 16, 60])),
            "optional": draw(st.booleans()),
            "priority": draw(st.integers(0, 2)),
        }
        for k in range(draw(st.integers(1, 4)))
    ]
    return {"horizon_h": draw(st.sampled_from([24.0, 48.0])), "tasks": tasks}


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    offers = [
        {
            "name": "big",
            "gpu": {"name": "BIG", "memory_gb": 80, "speed": 2.0},
            "gpus_per_node": 8,
            "price_per_node_hour": 20.0,
            "max_nodes": draw(st.integers(1, 4)),
        },
        {
            "name": "small",
            "gpu": {"name": "SMALL", "memory_gb": 24},
            "gpus_per_node": 4,
            "price_per_node_hour": 4.0,
            "max_nodes": 4,
            "commit_discount": draw(st.sampled_from([0.0, 0.3])),
            "commit_min_nodes": draw(st.integers(1, 2)),
        },
    ]
    return {"notice": "test prices", "offers": offers[: draw(st.integers(1, 2))]}


# --- running one case ----------------------------------------------------------------------------------


@dataclass
class Case:
    """One command line over documents (dicts, or bytes kept as base64 under `raw`)."""

    target: str
    args: list[str]  # with {name} standing for the file of files[name]
    files: dict[str, Any]
    limit_s: float
    found: str = ""  # what went wrong, when it did
    raw: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> Case:
        return cls(**json.loads(path.read_text()))


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    seconds: float
    crash: str = ""  # a traceback escaping main


def _case(target: str, args: list[str], docs: dict[str, Any], limit_s: float) -> Case:
    files, raw = {}, {}
    for name, doc in docs.items():
        if isinstance(doc, bytes):
            raw[name] = base64.b64encode(doc).decode()
        else:
            files[name] = doc
    return Case(target, args, files, limit_s, raw=raw)


def run_case(case: Case) -> Outcome:
    """Write the case's files to a temporary directory and run `main` on them in this process
    (GPUPLAN_DEBUG set: an internal error escapes as an exception and is kept as `crash`)."""
    with tempfile.TemporaryDirectory(prefix="gpuplan-fuzz-") as tmp:
        paths: dict[str, str] = {"tmp": tmp}
        for name, doc in case.files.items():
            p = Path(tmp) / f"{name}.json"
            p.write_text(json.dumps(doc))
            paths[name] = str(p)
        for name, b64 in case.raw.items():
            p = Path(tmp) / f"{name}.json"
            p.write_bytes(base64.b64decode(b64))
            paths[name] = str(p)
        argv = [a.format(**paths) for a in case.args]
        out, err = io.StringIO(), io.StringIO()
        old = os.environ.get("GPUPLAN_DEBUG")
        os.environ["GPUPLAN_DEBUG"] = "1"
        started = time.monotonic()
        code: int | None = None
        crash = ""
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        except BaseException:
            crash = traceback.format_exc()
        finally:
            if old is None:
                os.environ.pop("GPUPLAN_DEBUG", None)
            else:
                os.environ["GPUPLAN_DEBUG"] = old
        return Outcome(code, out.getvalue(), err.getvalue(), time.monotonic() - started, crash)


def check(case: Case, o: Outcome, codes: tuple[int, ...] = (0, 2, 3, 4)) -> str:
    """What is wrong with an outcome ("" when nothing): the exit code, a traceback, the error line,
    the time taken."""
    if o.crash:
        lines = o.crash.strip().splitlines()
        frames = [line.strip() for line in lines if line.strip().startswith("File ")]
        where = f" ({frames[-1].split('/')[-1]})" if frames else ""
        return f"crash: {lines[-1]}{where}"
    if o.code not in codes:
        return f"exit {o.code}: {o.err.strip()[-300:]}"
    if "Traceback" in o.err or "internal error" in o.err:
        return f"traceback on stderr: {o.err.strip()[-300:]}"
    if o.code == 2:
        lines = [line for line in o.err.splitlines() if line.startswith("gpuplan: error: ")]
        if len(lines) != 1:
            return f"exit 2 without exactly one error line: {o.err[:300]!r}"
    if o.seconds > case.limit_s:
        return f"took {o.seconds:.1f}s, over its limit of {case.limit_s:.1f}s"
    return ""


# --- targets ---------------------------------------------------------------------------------------------

T = TIME_LIMIT_S


def _solve_args(draw: st.DrawFn) -> list[str]:
    extra = draw(
        st.sampled_from(
            [[], [], ["--solver", "greedy"], ["--solver", "cpsat"], ["--seed", "7"], ["--solver", "milp"]]
        )
    )
    return ["solve", "{problem}", "--time-limit", str(T), "--workers", "1", *extra]


@st.composite
def solve_cases(draw: st.DrawFn) -> Case:
    doc = draw(mutated(draw(problems())))
    return _case("solve", _solve_args(draw), {"problem": doc}, T + SLACK_S)


@st.composite
def matrix_cases(draw: st.DrawFn) -> Case:
    doc = draw(mutated(draw(matrix_problems())))
    return _case("matrix", _solve_args(draw), {"problem": doc}, T + SLACK_S)


@st.composite
def validate_cases(draw: st.DrawFn) -> Case:
    doc = draw(mutated(draw(st.one_of(problems(), matrix_problems()))))
    return _case("validate", ["validate", "{problem}"], {"problem": doc}, SLACK_S)


@st.composite
def show_cases(draw: st.DrawFn) -> Case:
    doc = draw(mutated(draw(plans())))
    return _case("show", ["show", "{plan}"], {"plan": doc}, SLACK_S)


@st.composite
def inventory_cases(draw: st.DrawFn) -> Case:
    doc = draw(mutated(draw(sim_fleets())))
    return _case("inventory", ["inventory", "--devices", "{devices}"], {"devices": doc}, SLACK_S)


@st.composite
def run_cases(draw: st.DrawFn) -> Case:
    docs = draw(run_inputs())
    which = draw(st.sampled_from(sorted(docs)))
    docs[which] = draw(mutated(docs[which]))
    args = [
        "run",
        "{plan}",
        "--problem",
        "{problem}",
        "--commands",
        "{commands}",
        "--devices",
        "{devices}",
        "--state-dir",
        "{tmp}/state",
        "-q",
        "--poll-interval",
        "0.02",
        "--sample-interval",
        "0.05",
        "--grace",
        "0.2",
        "--replan-time-limit",
        "0.3",
        "--workers",
        "1",
        "--hour-seconds",
        "0.01",
    ]
    return _case("run", args, docs, 60.0)


@st.composite
def capacity_cases(draw: st.DrawFn) -> Case:
    docs = {"workload": draw(workloads()), "catalog": draw(catalogs())}
    which = draw(st.sampled_from(sorted(docs)))
    docs[which] = draw(mutated(docs[which]))
    args = [
        "capacity",
        "{workload}",
        "{catalog}",
        "--time-limit",
        "2",
        "--proof-time",
        "0.3",
        "--max-rounds",
        "2",
        "--workers",
        "1",
    ]
    return _case("capacity", args, docs, 2 * 2 + SLACK_S)


#: name -> strategy of cases, and the share of a campaign's time it gets.
TARGETS: dict[str, tuple[Callable[[], st.SearchStrategy[Case]], float]] = {
    "solve": (solve_cases, 0.3),
    "matrix": (matrix_cases, 0.15),
    "validate": (validate_cases, 0.1),
    "show": (show_cases, 0.1),
    "inventory": (inventory_cases, 0.05),
    "capacity": (capacity_cases, 0.15),
    "run": (run_cases, 0.15),
}


# --- the long campaign -----------------------------------------------------------------------------------


def _explore(name: str, strategy: st.SearchStrategy[Case], seconds: float, out: Path) -> dict[str, Any]:
    """Cases of one target for `seconds`, in batches of fresh seeds (generation only: a failure is
    written down, not shrunk); one file per distinct failure in `out`; the counts."""
    until = time.monotonic() + seconds
    tally: dict[str, Any] = {"inputs": 0, "exit_codes": {}, "failures": {}}

    def one(case: Case) -> None:
        if time.monotonic() > until:
            return
        tally["inputs"] += 1
        outcome = run_case(case)
        codes = tally["exit_codes"]
        codes[str(outcome.code)] = codes.get(str(outcome.code), 0) + 1
        found = check(case, outcome)
        if found:
            key = found if found.startswith("crash") else found[:40]  # a crash by its place
            seen = tally["failures"]
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 1:
                case.found = found
                (out / f"{name}-{len(seen):03d}.json").write_text(case.to_json())
                print(f"[{name}] {found[:200]}", file=sys.__stderr__, flush=True)

    batch = 0
    while time.monotonic() < until:
        run = settings(
            max_examples=200,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(seed(batch)(given(strategy)(one)))
        run()
        batch += 1
    return tally


def campaign(minutes: float, out: Path) -> dict[str, Any]:
    """Run every target for its share of `minutes`, going on past failures, writing one case per
    distinct failure (target and first words of what went wrong) to `out`. Returns the counts."""
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    for name, (strategy, share) in TARGETS.items():
        report[name] = tally = _explore(name, strategy(), minutes * 60 * share, out)
        print(
            f"{name}: {tally['inputs']} inputs, exit codes {tally['exit_codes']},"
            f" {len(tally['failures'])} distinct failures",
            file=sys.__stderr__,
            flush=True,
        )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--out", default="build/fuzz")
    a = ap.parse_args()
    rep = campaign(a.minutes, Path(a.out))
    print(json.dumps(rep, indent=1))

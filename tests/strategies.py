"""Hypothesis strategies for the property tests: random matrix instances, Problems with priorities,
tiny fleets (as models and as JSON-like dicts), capacity offers and tiny scheduled programs, plus the
shared settings."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from gpuplan import compile_problem, parse_problem
from gpuplan.bounds.knapsack import KnapsackLagrangian, knapsack_lagrangian
from gpuplan.models import GPUType, Node, Objective, Problem, Task
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.gap import Program
from gpuplan.program.schedule import ScheduleProgram

#: The settings of the property tests over tiny instances (solvers may take a while per example).
SETTINGS = settings(max_examples=40, deadline=None)

#: The single-criterion fleet objectives.
KINDS = ["cost", "energy", "balance", "gpus_used", "nodes_used", "placed"]

#: The GPU types of `tiny_fleet_problems`.
FLEET_TYPES = [
    GPUType(name="A", memory_gb=40, cost_per_hour=2.0, power_w=300),
    GPUType(name="B", memory_gb=80, cost_per_hour=3.0),
]


def program_of(m: dict) -> Program:
    """The compiled program of a problem given as a dict (matrix or Problem form)."""
    return compile_problem(parse_problem(m)).program


# --- matrix instances ----------------------------------------------------------------------------------


@st.composite
def matrices(
    draw: st.DrawFn,
    min_tasks: int = 1,
    max_tasks: int = 7,
    max_gpus: int = 3,
    cap_max: int = 14,
    homeless: bool = True,
    max_resources: int = 2,
) -> dict:
    """A random matrix instance: costs with some nulls, integer loads (1 to `max_resources`
    resources) and capacities.

    With `homeless=False` every task gets at least one GPU where its cost is given and its loads fit
    the capacities, so any infeasibility has to be proven by the solver rather than by presolve.
    """
    n_t = draw(st.integers(min_tasks, max_tasks))
    n_g = draw(st.integers(1, max_gpus))
    n_r = draw(st.integers(1, max_resources))
    entry = st.one_of(st.integers(-3, 30), st.integers(0, 40).map(lambda v: v / 4))
    cost = [[None if draw(st.integers(0, 5)) == 0 else draw(entry) for _ in range(n_g)] for _ in range(n_t)]
    loads = [[[draw(st.integers(0, 6)) for _ in range(n_g)] for _ in range(n_t)] for _ in range(n_r)]
    caps = [[draw(st.integers(0, cap_max)) for _ in range(n_g)] for _ in range(n_r)]
    if not homeless:
        for t in range(n_t):
            if not any(
                cost[t][g] is not None and all(loads[r][t][g] <= caps[r][g] for r in range(n_r))
                for g in range(n_g)
            ):
                g = draw(st.integers(0, n_g - 1))
                cost[t][g] = draw(entry)
                for r in range(n_r):
                    loads[r][t][g] = min(loads[r][t][g], caps[r][g])
    for r in range(n_r):
        for t in range(n_t):
            for g in range(n_g):
                if cost[t][g] is None and draw(st.booleans()):
                    loads[r][t][g] = None
    return {
        "matrix": {
            "cost": cost,
            "load": loads[0] if n_r == 1 else loads,
            "capacity": caps[0] if n_r == 1 else caps,
        }
    }


def one_resource_matrices() -> st.SearchStrategy[dict]:
    """Single-resource matrix instances in which every task has a home: the programs the knapsack
    Lagrangian and the branch and bound apply to."""
    return matrices(homeless=False, max_resources=1)


def multipliers(low: float, high: float, size: int = 7) -> st.SearchStrategy[list[float]]:
    """`size` Lagrange multipliers (or starting points) in [low, high], resized to the program."""
    return st.lists(st.floats(low, high), min_size=size, max_size=size)


# --- Problem form with optional tasks and priorities -------------------------------------------------------


@st.composite
def prioritized_problems(draw: st.DrawFn) -> dict:
    """A tiny Problem: 1-2 GPU types, 1-3 GPUs (all but the first maybe unhealthy), up to 5 tasks."""
    n_types = draw(st.integers(1, 2))
    types = [
        {
            "name": f"T{k}",
            "memory_gb": draw(st.sampled_from([16, 24, 40, 80])),
            "speed": draw(st.sampled_from([1, 2])),
            "cost_per_hour": draw(st.sampled_from([0, 1, 2.5, 3])),
        }
        for k in range(n_types)
    ]
    gpus = [
        {
            "id": f"g{k}",
            "type": draw(st.sampled_from([t["name"] for t in types])),
            "healthy": k == 0 or draw(st.booleans()),
        }
        for k in range(draw(st.integers(1, 3)))
    ]
    tasks = [
        {
            "id": f"t{i}",
            "work_h": draw(st.sampled_from([1, 2, 3, 4])),
            "gpu_share": draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
            "gpu_memory_gb": draw(st.sampled_from([0, 8, 16, 30])),
            "optional": draw(st.booleans().map(lambda b: b or draw(st.integers(0, 3)) > 0)),
            "priority": draw(st.integers(0, 2)),
        }
        for i in range(draw(st.integers(1, 5)))
    ]
    problem = {"gpu_types": types, "nodes": [{"id": "n", "gpus": gpus}], "tasks": tasks}
    horizon = draw(st.sampled_from([None, None, 2, 4, 8]))
    if horizon is not None:
        problem["horizon_h"] = horizon
    return problem


# --- tiny fleets ---------------------------------------------------------------------------------------


@st.composite
def tiny_fleet_problems(draw: st.DrawFn) -> Problem:
    """A tiny fleet Problem (types A and B, 1-2 nodes, 1-4 tasks, gangs of at most 2)."""
    n_nodes = draw(st.integers(1, 2))
    nodes = []
    for i in range(n_nodes):
        counts = {"A": draw(st.integers(0, 2)), "B": draw(st.integers(0, 1))}
        counts = {k: v for k, v in counts.items() if v} or {"A": 1}
        nodes.append(
            Node(
                id=f"n{i}",
                gpu_counts=counts,
                cpu_cores=draw(st.sampled_from([None, 4.0, 8.0])),
                memory_gb=draw(st.sampled_from([None, 16.0])),
                labels={"zone": draw(st.sampled_from(["x", "y"]))},
            )
        )
    tasks = []
    for j in range(draw(st.integers(1, 4))):
        gang = draw(st.sampled_from([1, 1, 2]))
        tasks.append(
            Task(
                id=f"t{j}",
                gpus=gang,
                same_type=draw(st.booleans()),
                gpu_share=1.0 if gang > 1 else draw(st.sampled_from([0.25, 0.5, 1.0])),
                work_h=draw(st.sampled_from([1.0, 2.0])),
                cpu_cores=draw(st.sampled_from([0.0, 2.0, 4.0])),
                memory_gb=draw(st.sampled_from([0.0, 8.0])),
                optional=draw(st.booleans()),
                priority=draw(st.integers(0, 1)),
                anti_affinity=draw(st.sampled_from([None, "svc"])),
                node_selector=draw(st.sampled_from([{}, {"zone": "x"}])),
            )
        )
    kind = draw(st.sampled_from(["cost", "placed", "gpus_used"]))
    return Problem(gpu_types=FLEET_TYPES, nodes=nodes, tasks=tasks, objective=Objective(kind=kind))


@st.composite
def lexicographic_fleets(draw: st.DrawFn, kinds: list[str] | None = None) -> Problem:
    """A tiny fleet Problem (types A and B, 1-2 nodes, 1-4 tasks of one priority, gangs of at most
    2, no migration) under a lexicographic objective over `kinds` (default: 2-6 criteria drawn in
    a random order)."""
    n_nodes = draw(st.integers(1, 2))
    nodes = []
    for i in range(n_nodes):
        counts = {"A": draw(st.integers(0, 2)), "B": draw(st.integers(0, 1))}
        nodes.append(Node(id=f"n{i}", gpu_counts={k: v for k, v in counts.items() if v} or {"A": 1}))
    tasks = []
    for j in range(draw(st.integers(1, 4))):
        gang = draw(st.sampled_from([1, 1, 2]))
        tasks.append(
            Task(
                id=f"t{j}",
                gpus=gang,
                gpu_share=1.0 if gang > 1 else draw(st.sampled_from([0.25, 0.5, 1.0])),
                gpu_memory_gb=draw(st.sampled_from([0.0, 30.0, 50.0])),
                work_h=draw(st.sampled_from([1.0, 2.0, 3.0])),
                optional=draw(st.booleans()),
            )
        )
    if kinds is None:
        kinds = draw(st.permutations(KINDS))[: draw(st.integers(2, 6))]
    objective = Objective(
        kind="lexicographic",
        terms=[{"kind": k} for k in kinds],
        placed_weight=draw(st.sampled_from(["gpu", "count", "work"])),
    )
    types = [FLEET_TYPES[0], FLEET_TYPES[1].model_copy(update={"power_w": 200.0, "speed": 2.0})]
    return Problem(gpu_types=types, nodes=nodes, tasks=tasks, objective=objective)


def _nodes(
    draw: st.DrawFn,
    names: list[str],
    n_nodes: int,
    budget: int,
    listed_one_in: int,
    cpu: list[float | None],
    mem: list[float | None],
    bandwidth: list[float | None],
) -> list[dict]:
    """Nodes with at most `budget` GPUs in all, counted by type and sometimes one listed with its
    health and temperature; the first node has a GPU of the first type (no fleet is without GPUs)."""
    nodes = []
    for i in range(n_nodes):
        counts = {}
        for name in names:
            c = draw(st.integers(0 if i or name != names[0] else 1, min(2, budget)))
            budget -= c
            if c:
                counts[name] = c
        listed = []
        if budget > 0 and draw(st.integers(0, listed_one_in)) == 0:
            budget -= 1
            listed.append(
                {
                    "id": f"n{i}-x",
                    "type": draw(st.sampled_from(names)),
                    "healthy": draw(st.booleans()),
                    "temperature_c": draw(st.sampled_from([None, 60, 90])),
                }
            )
        nodes.append(
            {
                "id": f"n{i}",
                "gpu_counts": counts,
                "gpus": listed,
                "cpu_cores": draw(st.sampled_from(cpu)),
                "memory_gb": draw(st.sampled_from(mem)),
                "labels": draw(st.sampled_from([{}, {"zone": "a"}, {"zone": "b"}])),
                "bandwidth_gbps": draw(st.sampled_from(bandwidth)),
            }
        )
    return nodes


def _duration_and_rules(
    draw: st.DrawFn, task: dict, names: list[str], min_memory_one_in: int, selector_one_in: int
) -> None:
    """Give `task` a duration (work_h, or duration_h per type) and, at random, its eligibility rules:
    allowed or forbidden types, a minimum GPU memory, a node selector."""
    if draw(st.booleans()):
        task["work_h"] = draw(st.sampled_from([0.5, 1, 2, 3]))
    else:
        task["duration_h"] = {name: draw(st.sampled_from([0.5, 1, 1.5, 4])) for name in names}
    if draw(st.integers(0, 3)) == 0:
        task["allowed_types"] = [draw(st.sampled_from(names))]
    elif draw(st.integers(0, 3)) == 0:
        task["forbidden_types"] = [draw(st.sampled_from(names))]
    if draw(st.integers(0, min_memory_one_in)) == 0:
        task["min_gpu_memory_gb"] = 40
    if draw(st.integers(0, selector_one_in)) == 0:
        task["node_selector"] = {"zone": draw(st.sampled_from(["a", "b"]))}


@st.composite
def fleets(draw: st.DrawFn) -> dict:
    """A tiny Problem (<= 5 GPUs, <= 4 tasks) exercising every fleet feature at random."""
    types = [
        {
            "name": name,
            "memory_gb": draw(st.sampled_from([16, 40, 80])),
            "speed": draw(st.sampled_from([1, 2])),
            "cost_per_hour": draw(st.sampled_from([0, 1, 2.5, 3])),
            "power_w": draw(st.sampled_from([0, 300, 700])),
        }
        for name in ["A", "B"][: draw(st.integers(1, 2))]
    ]
    names = [t["name"] for t in types]
    n_nodes = draw(st.integers(1, 3))
    nodes = _nodes(
        draw, names, n_nodes, 5, 4, [None, None, 4, 8, 16], [None, None, 32, 64], [None, None, 10, 100]
    )
    gpu_ids = [g["id"] for n in nodes for g in n["gpus"]] + [
        f"{n['id']}/{name}/{k}" for n in nodes for name, c in n["gpu_counts"].items() for k in range(c)
    ]
    tasks = []
    for i in range(draw(st.integers(1, 4))):
        gang = draw(st.sampled_from([1, 1, 2])) if len(gpu_ids) > 1 else 1
        task: dict = {
            "id": f"t{i}",
            "gpus": gang,
            "same_type": draw(st.booleans()),
            "gpu_share": 1.0 if gang > 1 else draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
            "gpu_memory_gb": draw(st.sampled_from([0, 0, 10, 30])),
            "cpu_cores": draw(st.sampled_from([0, 2, 4, 8])),
            "memory_gb": draw(st.sampled_from([0, 16, 32])),
            "priority": draw(st.integers(0, 1)),
            "optional": draw(st.sampled_from([True, True, False])),
            "input_gb": draw(st.sampled_from([0, 0, 10, 50])),
            "dataset": draw(st.sampled_from([None, None, "d1", "d2"])),
            "anti_affinity": draw(st.sampled_from([None, None, "s"])),
        }
        _duration_and_rules(draw, task, names, min_memory_one_in=5, selector_one_in=4)
        if draw(st.integers(0, 2)) == 0:
            task["current_gpus"] = draw(st.permutations(gpu_ids))[:gang]
            task["migration_cost"] = draw(st.sampled_from([0, 1, 5]))
        if len(task.get("current_gpus") or [None] * gang) != gang:
            task.pop("current_gpus")
        tasks.append(task)
    kind = draw(st.sampled_from([*KINDS, "weighted", "lexicographic"]))
    objective: dict = {"kind": kind, "placed_weight": draw(st.sampled_from(["gpu", "count", "work"]))}
    if kind in ("weighted", "lexicographic"):
        chosen = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True))
        objective["terms"] = [{"kind": k, "weight": draw(st.sampled_from([0.5, 1, 2]))} for k in chosen]
    return {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "horizon_h": draw(st.sampled_from([None, None, 2, 4])),
        "temperature_limit_c": draw(st.sampled_from([None, 80])),
        "transfer_cost_per_gb": draw(st.sampled_from([0, 0, 0.01, 0.1])),
        "objective": objective,
    }


# --- capacity offers -------------------------------------------------------------------------------------

#: Offer specs: (speed, GPUs per node, price, commit discount, commit minimum, max nodes).
offer_specs = st.lists(
    st.tuples(
        st.sampled_from([0.5, 1.0, 2.0]),  # speed
        st.sampled_from([1, 2, 4]),  # GPUs per node
        st.integers(1, 20),  # price
        st.sampled_from([0.0, 0.2, 0.5]),  # commit discount
        st.integers(1, 3),  # commit minimum
        st.integers(1, 3),  # max nodes
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def offers_and_works(draw: st.DrawFn, horizon: float = 40.0) -> tuple[list[tuple], list[int]]:
    """Offer specs and 1-6 single-GPU works (hours, at most 30) that fit within `horizon` on every offer."""
    specs = draw(offer_specs)
    longest = min(30, int(horizon * min(s for s, *_ in specs)))
    return specs, draw(st.lists(st.integers(1, longest), min_size=1, max_size=6))


# --- builders shared by several test files ---------------------------------------------------


def type_d_matrix(t: int, g: int, seed: int, max_load: int) -> dict:
    """A matrix instance shaped like Chu & Beasley's type D: cost falls as load rises, tight capacity."""
    rng = np.random.default_rng(seed)
    load = rng.integers(1, max_load + 1, size=(t, g))
    cost = 111 - load + rng.integers(-10, 11, size=(t, g))
    cap = (0.8 * load.sum(axis=0) / g).astype(int)
    return {"matrix": {"cost": cost.tolist(), "load": load.tolist(), "capacity": cap.tolist()}}


def program_with_drops(
    m: dict, optional: list[bool] | None = None, penalty: list[int] | None = None
) -> Program:
    """The program of matrix `m`, with the tasks `optional` marks droppable at integer `penalty`."""
    p = program_of(m)
    if optional is not None and penalty is not None:
        opt = np.resize(np.array(optional, dtype=bool), p.n_tasks)
        pen = np.where(opt, np.resize(np.array(penalty, dtype=np.int64), p.n_tasks), 0)
        p = p.replace(
            optional=opt,
            penalty=pen.astype(np.float64) / p.cost_scale,
            penalty_int=pen,
        )
    return p


def knapsack_from(p: Program, u0: list[float] | None = None) -> KnapsackLagrangian:
    """The knapsack Lagrangian from multipliers `u0` (resized to the tasks; default zeros)."""
    u = np.zeros(p.n_tasks) if u0 is None else np.resize(np.array(u0), p.n_tasks)
    return knapsack_lagrangian(p, u, None, time.monotonic() + 2, iterations=60)


# --- tiny Problems for the backend conformance battery -------------------------------------------


@st.composite
def gap_problems(draw: st.DrawFn) -> dict:
    """A tiny Problem that is a GAP (one GPU per task, cost only) with eligibility rules at random:
    allowed and forbidden types, node selectors, minimum GPU memory, unhealthy or hot GPUs, node CPU
    and memory left idle, input read over a link at no charge; shares and memory side by side, or
    GPU time within a horizon; optional tasks with priorities. At most 5 tasks and 4 GPUs."""
    types = [
        {
            "name": name,
            "memory_gb": draw(st.sampled_from([16, 40, 80])),
            "speed": draw(st.sampled_from([1, 2])),
            "cost_per_hour": draw(st.sampled_from([0, 1, 2.5, 3])),
        }
        for name in ["A", "B"][: draw(st.integers(1, 2))]
    ]
    names = [t["name"] for t in types]
    nodes = _nodes(draw, names, draw(st.integers(1, 2)), 4, 2, [None, 4], [None, 32], [None, None, 10])
    tasks = []
    for i in range(draw(st.integers(1, 5))):
        task: dict = {
            "id": f"t{i}",
            "gpu_share": draw(st.sampled_from([0.25, 0.5, 0.75, 1.0])),
            "gpu_memory_gb": draw(st.sampled_from([0, 0, 10, 30])),
            "priority": draw(st.integers(0, 2)),
            "optional": draw(st.sampled_from([True, False, False])),
            "input_gb": draw(st.sampled_from([0, 0, 20])),
        }
        _duration_and_rules(draw, task, names, min_memory_one_in=4, selector_one_in=3)
        tasks.append(task)
    return {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "horizon_h": draw(st.sampled_from([None, None, 2, 4])),
        "temperature_limit_c": draw(st.sampled_from([None, 80])),
        "objective": {"kind": "cost"},
    }


@st.composite
def cpu_fleets(draw: st.DrawFn) -> dict:
    """A tiny Problem with CPU-only tasks (`gpus: 0`) beside GPU tasks and gangs of 2, on nodes with
    and without GPUs sharing CPU and memory; spread groups, datasets, selectors; every single
    criterion or a weighted sum. At most 5 tasks (one CPU-only at least) and 4 GPUs."""
    types = [{"name": "A", "memory_gb": 80, "cost_per_hour": 2.0, "power_w": 400}]
    nodes = []
    for i in range(draw(st.integers(1, 3))):
        gpus = draw(st.integers(0, 2))
        node: dict = {
            "id": f"n{i}",
            "cpu_cores": draw(st.sampled_from([None, 4, 8])),
            "memory_gb": draw(st.sampled_from([None, 16, 32])),
            "labels": draw(st.sampled_from([{}, {"zone": "a"}])),
            "bandwidth_gbps": draw(st.sampled_from([None, 10])),
        }
        if gpus:
            node["gpu_counts"] = {"A": gpus}
        nodes.append(node)
    tasks = []
    for i in range(draw(st.integers(1, 5))):
        gpus = 0 if i == 0 else draw(st.sampled_from([0, 1, 1, 2]))
        task: dict = {
            "id": f"t{i}",
            "gpus": gpus,
            "cpu_cores": draw(st.sampled_from([0, 2, 4, 6])),
            "memory_gb": draw(st.sampled_from([0, 8, 16])),
            "work_h": draw(st.sampled_from([0.5, 1, 3])),
            "priority": draw(st.integers(0, 1)),
            "optional": draw(st.sampled_from([True, True, False])),
            "anti_affinity": draw(st.sampled_from([None, None, "s"])),
            "input_gb": draw(st.sampled_from([0, 0, 50])),
            "dataset": draw(st.sampled_from([None, None, "d"])),
        }
        if gpus == 1:
            task["gpu_share"] = draw(st.sampled_from([0.5, 1.0]))
        if draw(st.integers(0, 3)) == 0:
            task["node_selector"] = {"zone": "a"}
        tasks.append(task)
    kind = draw(st.sampled_from([*KINDS, "weighted"]))
    objective: dict = {"kind": kind, "placed_weight": draw(st.sampled_from(["gpu", "count", "work"]))}
    if kind == "weighted":
        chosen = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True))
        objective["terms"] = [{"kind": k, "weight": draw(st.sampled_from([0.5, 1, 2]))} for k in chosen]
    return {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "objective": objective,
        "horizon_h": draw(st.sampled_from([None, None, 2])),
        "transfer_cost_per_gb": draw(st.sampled_from([0, 0.1])),
    }


# --- scheduled programs ------------------------------------------------------------------------


def schedule_of(
    problem: Problem | dict,
    release: list[float],
    deadline: list[float],
    due: list[float],
    weight: list[float],
    pred: list[tuple[int, int]],
    w: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> ScheduleProgram:
    """The scheduled program of a Problem without a horizon (its compiled fleet program and
    durations) with the time arrays given (inf: none), and weights (makespan, completion, tardiness)."""
    p = problem if isinstance(problem, Problem) else Problem.model_validate(problem)
    fc = compile_fleet(p)
    return ScheduleProgram(
        fleet=fc.program,
        duration_c=fc.duration,
        release=np.array(release, dtype=np.float64),
        deadline=np.array(deadline, dtype=np.float64),
        due=np.array(due, dtype=np.float64),
        weight=np.array(weight, dtype=np.float64),
        pred=np.array(pred, dtype=np.int64).reshape(-1, 2),
        w_makespan=w[0],
        w_completion=w[1],
        w_tardiness=w[2],
    )


@st.composite
def scheduled_programs(draw: st.DrawFn, max_tasks: int = 3, max_gpus: int = 3) -> ScheduleProgram:
    """A tiny scheduled program with integer durations and releases (so the brute force over an
    integer start grid is exact): types A and B (memory 80 and 40 GB, integer durations per type),
    1-2 nodes with CPU limits at random, 2-`max_tasks` tasks (gangs of 2 sometimes, of one type or
    mixed; shares, GPU memory, CPU, optional tasks, a spread group), releases, deadlines, due times,
    weights, a few precedences (a < b, so acyclic) and time weights at random. At most `max_gpus` GPUs."""
    n_nodes = draw(st.integers(1, 2))
    budget = max_gpus
    nodes = []
    for i in range(n_nodes):
        a = draw(st.integers(0 if i else 1, min(2, budget)))
        b = draw(st.integers(0, min(1, budget - a)))
        budget -= a + b
        counts = {k: v for k, v in (("A", a), ("B", b)) if v}
        node: dict = {"id": f"n{i}", "cpu_cores": draw(st.sampled_from([None, None, 4]))}
        if counts:
            node["gpu_counts"] = counts
        nodes.append(node)
    n_t = draw(st.integers(2, max_tasks))
    tasks = []
    for j in range(n_t):
        gang = draw(st.sampled_from([1, 1, 1, 2]))
        tasks.append(
            {
                "id": f"t{j}",
                "gpus": gang,
                "same_type": draw(st.booleans()),
                "gpu_share": 1.0 if gang > 1 else draw(st.sampled_from([0.5, 1.0])),
                "gpu_memory_gb": draw(st.sampled_from([0, 0, 30])),
                "cpu_cores": draw(st.sampled_from([0, 2, 4])),
                "duration_h": {"A": draw(st.integers(1, 2)), "B": draw(st.integers(1, 2))},
                "optional": draw(st.booleans()),
                "priority": draw(st.integers(0, 1)),
                "anti_affinity": draw(st.sampled_from([None, None, "s"])),
            }
        )
    kind = draw(st.sampled_from(["cost", "placed", "gpus_used"]))
    types = [
        {"name": "A", "memory_gb": 80, "cost_per_hour": 2.0},
        {"name": "B", "memory_gb": 40, "cost_per_hour": 1.0},
    ]
    problem = {"gpu_types": types, "nodes": nodes, "tasks": tasks, "objective": {"kind": kind}}
    inf = float("inf")
    pairs = [(a, b) for a in range(n_t) for b in range(a + 1, n_t)]
    return schedule_of(
        problem,
        release=[draw(st.sampled_from([0, 0, 1])) for _ in range(n_t)],
        deadline=[draw(st.sampled_from([inf, inf, 2, 3])) for _ in range(n_t)],
        due=[draw(st.sampled_from([inf, 1, 2])) for _ in range(n_t)],
        weight=[draw(st.sampled_from([0, 1, 2])) for _ in range(n_t)],
        pred=draw(st.lists(st.sampled_from(pairs), max_size=2, unique=True)),
        w=(draw(st.sampled_from([0, 1])), draw(st.sampled_from([0, 0.5])), draw(st.sampled_from([0, 1]))),
    )


#: The GPU types of `random_schedule`.
SCHEDULE_TYPES = [
    {"name": "A", "memory_gb": 80, "cost_per_hour": 2.0, "speed": 2},
    {"name": "B", "memory_gb": 40, "cost_per_hour": 1.0},
]


def random_schedule(n_tasks: int, n_nodes: int, seed: int, deadlines: bool) -> ScheduleProgram:
    """Random tasks (gangs up to 4, shares, GPU memory, CPU, host memory, a spread group, optional
    ones) on 4-GPU nodes of type A or B, with releases, chains and, optionally, deadlines."""
    rng = np.random.default_rng(seed)
    nodes = [
        {"id": f"n{i}", "gpu_counts": {"AB"[i % 2]: 4}, "cpu_cores": 16, "memory_gb": 128}
        for i in range(n_nodes)
    ]
    tasks = []
    for i in range(n_tasks):
        gang = int(rng.choice([1, 1, 1, 2, 4]))
        tasks.append(
            {
                "id": f"t{i}",
                "gpus": gang,
                "same_type": bool(rng.random() < 0.5),
                "gpu_share": float(rng.choice([0.25, 0.5, 1.0])) if gang == 1 else 1.0,
                "gpu_memory_gb": float(rng.choice([0, 10, 30])),
                "cpu_cores": float(rng.choice([1, 4, 8])),
                "memory_gb": float(rng.choice([8, 32, 64])),
                "work_h": float(rng.choice([0.3, 1, 2.5, 4])),
                "optional": bool(rng.random() < 0.3),
                "anti_affinity": "s" if rng.random() < 0.05 else None,
            }
        )
    release = rng.uniform(0, 10, n_tasks)
    inf = float("inf")
    deadline = np.where(rng.random(n_tasks) < 0.3, release + rng.uniform(1, 30, n_tasks), inf)
    if not deadlines:
        deadline[:] = inf
    a = rng.integers(0, n_tasks - 1, n_tasks // 4)
    b = a + rng.integers(1, 20, a.size)
    keep = b < n_tasks
    return schedule_of(
        {"gpu_types": SCHEDULE_TYPES, "nodes": nodes, "tasks": tasks},
        release.tolist(),
        deadline.tolist(),
        (release + 5).tolist(),
        rng.integers(0, 3, n_tasks).tolist(),
        np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0).tolist(),
        w=(1.0, 0.1, 0.5),
    )


@st.composite
def scheduled_problems(draw: st.DrawFn, max_tasks: int = 3) -> dict:
    """A tiny scheduled Problem (JSON dict) with integer durations and releases, for end-to-end
    checks against the schedule brute force: 1-3 GPUs of types A and B on 1-2 nodes, 2-`max_tasks`
    tasks (single GPUs or gangs of 2, shares, CPU, optional ones, a spread group) with releases,
    deadlines, due times, weights and precedences, and a time criterion weighed with cost or placed."""
    nodes = [
        {
            "id": "n0",
            "gpu_counts": {"A": draw(st.integers(1, 2))},
            "cpu_cores": draw(st.sampled_from([None, 4])),
        }
    ]
    if draw(st.booleans()):
        nodes.append({"id": "n1", "gpu_counts": {"B": 1}})
    n_t = draw(st.integers(2, max_tasks))
    tasks = []
    for j in range(n_t):
        gang = draw(st.sampled_from([1, 1, 2]))
        task: dict = {
            "id": f"t{j}",
            "gpus": gang,
            "gpu_share": 1.0 if gang > 1 else draw(st.sampled_from([0.5, 1.0])),
            "cpu_cores": draw(st.sampled_from([0, 2, 4])),
            "duration_h": {"A": draw(st.integers(1, 2)), "B": draw(st.integers(1, 3))},
            "optional": draw(st.booleans()),
            "anti_affinity": draw(st.sampled_from([None, None, "s"])),
            "release_h": draw(st.sampled_from([0, 0, 1])),
            "weight": draw(st.sampled_from([0, 1, 2])),
        }
        deadline = draw(st.sampled_from([None, None, 3, 4]))
        if deadline is not None:
            task["deadline_h"] = deadline
        due = draw(st.sampled_from([None, 1, 2]))
        if due is not None:
            task["due_h"] = due
        if j and draw(st.booleans()):
            task["after"] = [f"t{draw(st.integers(0, j - 1))}"]
        tasks.append(task)
    timed = draw(st.sampled_from(["makespan", "completion_time", "tardiness"]))
    other = draw(st.sampled_from(["cost", "placed"]))
    types = [
        {"name": "A", "memory_gb": 80, "cost_per_hour": 2.0},
        {"name": "B", "memory_gb": 40, "cost_per_hour": 1.0},
    ]
    terms = [{"kind": timed, "weight": 1.0}, {"kind": other, "weight": draw(st.sampled_from([0.5, 1.0]))}]
    return {
        "gpu_types": types,
        "nodes": nodes,
        "tasks": tasks,
        "objective": {"kind": "weighted", "terms": terms},
    }


def job_shop(
    jobs: int, machines: int, ops: int, seed: int, longest: int = 20, copies: int = 1
) -> ScheduleProgram:
    """A random flexible job shop as a scheduled program: each job a chain of `ops` tasks, each task
    on 2 of the `machines` GPUs (one per type) with durations 1-`longest` h; minimise the makespan.
    With `copies` > 1, that many disjoint copies of it, each on GPUs of its own (the optimum is one
    copy's)."""
    rng = np.random.default_rng(seed)
    types = [{"name": f"M{m}", "memory_gb": 80} for m in range(machines * copies)]
    nodes = [{"id": f"n{m}", "gpus": [{"id": f"g{m}", "type": f"M{m}"}]} for m in range(machines * copies)]
    shop = [
        [
            {int(m): float(rng.integers(1, longest + 1)) for m in rng.choice(machines, size=2, replace=False)}
            for _ in range(ops)
        ]
        for _ in range(jobs)
    ]
    tasks, pred = [], []
    for c in range(copies):
        for j, job in enumerate(shop):
            for o, alts in enumerate(job):
                durations = {f"M{c * machines + m}": d for m, d in alts.items()}
                tasks.append({"id": f"c{c}j{j}o{o}" if copies > 1 else f"j{j}o{o}", "duration_h": durations})
                if o:
                    pred.append((len(tasks) - 2, len(tasks) - 1))
    n = len(tasks)
    prob = {"gpu_types": types, "nodes": nodes, "tasks": tasks}
    inf = float("inf")
    return schedule_of(prob, [0] * n, [inf] * n, [inf] * n, [1] * n, pred, w=(1, 0, 0))


def makespan_only(sp: ScheduleProgram) -> ScheduleProgram:
    """`sp` whose objective is its makespan alone: no placement cost, free drops, no other time
    term, so the brute-force optimum is the least makespan over every feasible plan."""
    f = sp.fleet
    fleet = f.replace(
        cost_c=np.zeros_like(f.cost_c),
        penalty=np.zeros_like(f.penalty),
        move_cost=np.zeros_like(f.move_cost),
        transfer_each=np.zeros_like(f.transfer_each),
        dataset_charge=np.zeros_like(f.dataset_charge),
        w_gpus=0.0,
        w_nodes=0.0,
        w_balance=0.0,
    )
    return sp.replace(fleet=fleet, w_makespan=1.0, w_completion=0.0, w_tardiness=0.0)


def on_first_cpsat_solve(monkeypatch: Any, **params: Any) -> list[str]:
    """Make the scheduled CP-SAT solve's first CP-SAT call run with `params` set (e.g. stopped after
    presolve); the list returned grows by one entry per call."""
    from gpuplan.backends import schedule_cpsat

    real = schedule_cpsat.solve_cpsat
    calls: list[str] = []

    def solve(solver: Any, model: Any, callback: Any = None) -> Any:
        if not calls:
            for name, value in params.items():
                setattr(solver.parameters, name, value)
        calls.append("solve")
        return real(solver, model, callback)

    monkeypatch.setattr(schedule_cpsat, "solve_cpsat", solve)
    return calls

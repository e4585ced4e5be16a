"""The partitioned solve (`solve(..., partitions=k)`, `gpuplan solve --partitions K`): the split, the
refusals, the merge and repair on the whole fleet, and the one verifier on every plan."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given

import gpuplan
from gpuplan import partition
from gpuplan.cli import main
from gpuplan.errors import InputError
from gpuplan.models import Problem
from gpuplan.program.verify import verify
from tests.strategies import SETTINGS, fleets

REFUSED = Path(__file__).resolve().parent / "data" / "partition_refused"

# Each fixture refused with --partitions 2, and words its one-line error must hold (the field first).
REFUSED_WORDS = {
    "scheduled_after": ["tasks[1].after", "scheduled", "2 parts"],
    "scheduled_deadline": ["tasks[2].deadline_h", "scheduled", "2 parts"],
    "time_objective": ["objective.kind", "scheduled", "2 parts"],
    "matrix_form": ["--partitions", "matrix form"],
    "more_parts_than_nodes": ["--partitions", "2 parts but only 1 node(s)"],
}


def small_problem(n_tasks: int = 24, required: bool = False) -> Problem:
    """Eight nodes of two shapes (A and B GPUs, CPU and memory limits) and a mixed batch: single GPUs
    with shares, gangs of 2, CPU-only tasks, a spread group and some tasks only B may take."""
    nodes = [{"id": f"a{i}", "gpu_counts": {"A": 4}, "cpu_cores": 32, "memory_gb": 256} for i in range(4)] + [
        {"id": f"b{i}", "gpu_counts": {"B": 2}, "cpu_cores": 16, "memory_gb": 128} for i in range(4)
    ]
    tasks: list[dict[str, Any]] = []
    for j in range(n_tasks):
        task: dict[str, Any] = {"id": f"t{j}", "work_h": 1 + j % 5, "cpu_cores": 2 + j % 3, "memory_gb": 16}
        if j % 6 == 0:
            task.update(gpus=2)
        elif j % 6 == 1:
            task.update(gpus=0)
        elif j % 6 == 2:
            task.update(allowed_types=["B"], gpu_share=0.5)
        elif j % 6 == 3:
            task.update(anti_affinity="web", gpu_share=0.25)
        else:
            task.update(gpu_share=[0.25, 0.5, 1.0][j % 3])
        task["optional"] = not required or j % 2 == 1
        tasks.append(task)
    return Problem.model_validate(
        {
            "gpu_types": [
                {"name": "A", "memory_gb": 40, "cost_per_hour": 1.0},
                {"name": "B", "memory_gb": 80, "cost_per_hour": 3.0},
            ],
            "nodes": nodes,
            "tasks": tasks,
        }
    )


def accounted(plan: gpuplan.Plan, problem: Problem) -> None:
    """Every task is placed once or left out with a reason."""
    placed = [a.task for a in plan.assignments]
    left = {u.task: u.reason for u in plan.unassigned}
    assert len(placed) == len(set(placed))
    assert sorted([*placed, *left]) == sorted(t.id for t in problem.tasks)
    assert all(reason for reason in left.values())


def inline_parts(
    jobs: list[tuple[int, Problem]],
    solver: str,
    workers: int,
    seed: int,
    until: float,
    during: Any,
    stats: dict[str, Any],
) -> list[dict[str, Any]]:
    """`partition.run_parts` in this process, one part after the other (the same part solve)."""
    during()
    end_wall = time.time() + max(0.0, until - time.monotonic())
    out = []
    for k, (i, sub) in enumerate(jobs):
        share = max(0.0, until - time.monotonic()) / (len(jobs) - k)
        out.append(partition._solve_part(i, sub, solver, end_wall, share, 1, seed))
    stats["parts_missing"] = 0
    return out


# --- a partitioned solve in worker processes -------------------------------------------------------------


def test_two_parts_give_a_verified_plan():
    """k = 2 in worker processes: a verified plan with the whole program's bound, the parts in stats."""
    problem = small_problem(required=True)
    plan = gpuplan.solve(problem, time_limit_s=4, workers=2, partitions=2)
    verify(plan, problem)
    accounted(plan, problem)
    assert plan.status.has_solution
    assert plan.solver == "partitioned"
    assert plan.stats["partitions"] == 2 and plan.stats["parts_missing"] == 0
    assert plan.stats["part0_tasks"] + plan.stats["part1_tasks"] == len(problem.tasks)
    assert plan.bound is not None and plan.bound <= plan.objective + 1e-6
    assert plan.wall_time_s <= 4 + 1.0


def test_stop_returns_the_best_plan_so_far():
    """A stop set during the parts' solves ends them early; the plan is verified and marked."""
    problem = small_problem(n_tasks=200)
    stop = threading.Event()
    timer = threading.Timer(2.0, stop.set)
    timer.start()
    began = time.monotonic()
    try:
        plan = gpuplan.solve(problem, time_limit_s=60, workers=2, partitions=2, stop=stop)
    finally:
        timer.cancel()
    assert time.monotonic() - began < 30
    assert plan.stats["interrupted"] is True
    verify(plan, problem)
    accounted(plan, problem)


# --- the repair ------------------------------------------------------------------------------------------


def test_a_part_lost_is_repaired_on_the_whole_fleet(monkeypatch):
    """When a part brings nothing back, the repair places its tasks (required ones first) on the
    whole fleet's leftover room, and says how many."""

    def lose_part_1(jobs, solver, workers, seed, until, during, stats):
        out = inline_parts(jobs, solver, workers, seed, until, during, stats)
        return [r if r["index"] != 1 else {**r, "placed": [], "status": "lost"} for r in out]

    monkeypatch.setattr(partition, "run_parts", lose_part_1)
    problem = small_problem(required=True)
    plan = gpuplan.solve(problem, time_limit_s=4, workers=1, partitions=2)
    verify(plan, problem)
    accounted(plan, problem)
    assert plan.status.has_solution  # every required task placed
    assert plan.stats["repair_placed"] > 0
    assert plan.stats["merged_placed"] + plan.stats["repair_placed"] == len(plan.assignments)


@SETTINGS
@given(fleets())
def test_merged_and_repaired_plans_are_never_infeasible(data):
    """Tiny problems with every fleet feature, cut in 2 or 3 parts: the plan always passes the one
    verifier (solve raises otherwise), and every task is placed or left out with a reason."""
    problem = gpuplan.parse_problem(data)
    assert isinstance(problem, Problem)
    assume(len(problem.nodes) >= 2 and not problem.scheduled)
    k = min(len(problem.nodes), 3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(partition, "run_parts", inline_parts)
        plan = gpuplan.solve(problem, time_limit_s=3, workers=1, partitions=k)
    verify(plan, problem)
    accounted(plan, problem)
    if plan.status.has_solution and plan.bound is not None:
        assert plan.bound <= plan.objective + 1e-6 * max(1.0, abs(plan.objective))


# --- the split -------------------------------------------------------------------------------------------


def test_the_split_is_deterministic_for_a_seed():
    problem = small_problem(n_tasks=60)
    one = partition.split_problem(problem, 3, seed=7)
    two = partition.split_problem(problem, 3, seed=7)
    assert np.array_equal(one.node_part, two.node_part)
    assert np.array_equal(one.task_part, two.task_part)
    others = [partition.split_problem(problem, 3, seed=s) for s in range(8)]
    assert any(not np.array_equal(o.node_part, one.node_part) for o in others)


def test_each_part_gets_its_share_of_every_node_shape_and_task_kind():
    problem = small_problem(n_tasks=60)
    split = partition.split_problem(problem, 2, seed=1)
    for prefix in ("a", "b"):
        rows = [i for i, n in enumerate(problem.nodes) if n.id.startswith(prefix)]
        assert np.bincount(split.node_part[rows], minlength=2).tolist() == [2, 2]
    gangs = [t for t, task in enumerate(problem.tasks) if task.gpus == 2]
    counts = np.bincount(split.task_part[gangs], minlength=2)
    assert abs(int(counts[0]) - int(counts[1])) <= 1
    subs = partition.sub_problems(problem, split)
    assert sorted(t.id for s in subs for t in s.tasks) == sorted(t.id for t in problem.tasks)
    assert all(t.optional for s in subs for t in s.tasks)  # required ones too, one tier above the rest


def test_a_running_task_goes_with_its_nodes():
    """Nodes holding one gang's current GPUs share a part, and the gang goes to that part."""
    data = small_problem(n_tasks=12).model_dump(exclude_defaults=True)
    data["tasks"][0]["current_gpus"] = ["a0/A/0", "b3/B/1"]
    problem = Problem.model_validate(data)
    for seed in range(5):
        split = partition.split_problem(problem, 4, seed=seed)
        ids = [n.id for n in problem.nodes]
        part = split.node_part[ids.index("a0")]
        assert split.node_part[ids.index("b3")] == part
        assert split.task_part[0] == part


def test_tasks_only_some_nodes_take_go_where_those_nodes_are():
    """A kind that only B GPUs take is dealt by the B GPUs each part holds."""
    data = small_problem(n_tasks=12).model_dump(exclude_defaults=True)
    data["nodes"] = [n for n in data["nodes"] if n["id"] != "b1" and n["id"] != "b2" and n["id"] != "b3"]
    problem = Problem.model_validate(data)
    split = partition.split_problem(problem, 2, seed=0)
    b0 = split.node_part[[n.id for n in problem.nodes].index("b0")]
    only_b = [t for t, task in enumerate(problem.tasks) if task.allowed_types == ["B"]]
    assert only_b and all(split.task_part[t] == b0 for t in only_b)


# --- refusals --------------------------------------------------------------------------------------------


def test_every_refusal_fixture_has_expectations():
    assert {p.stem for p in REFUSED.glob("*.json")} == set(REFUSED_WORDS)


@pytest.mark.parametrize("name", sorted(REFUSED_WORDS))
def test_unsupported_problems_exit_2_naming_the_field(name, capsys):
    code = main(["solve", "--partitions", "2", "--time-limit", "2", str(REFUSED / f"{name}.json")])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpuplan: error: "), err
    for word in REFUSED_WORDS[name]:
        assert word in lines[0], (word, lines[0])
    assert json.loads(out)["status"] == "invalid"


@pytest.mark.parametrize("k", [0, -1, partition.MAX_PARTITIONS + 1])
def test_a_bad_number_of_parts_is_invalid_input(k, capsys):
    code = main(["solve", "--partitions", str(k), str(REFUSED / "more_parts_than_nodes.json")])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--partitions" in err and f"got {k}" in err


def test_the_api_names_the_argument():
    with pytest.raises(InputError) as exc:
        gpuplan.solve(small_problem(), partitions=9)
    assert exc.value.path == "partitions"


# --- the parts as Ray tasks ------------------------------------------------------------------------------


def test_the_parts_run_as_ray_tasks():
    """With `ray`, the parts are Ray tasks (here on a local Ray instance); the plan is the same kind."""
    ray = pytest.importorskip("ray", reason="needs the ray package: pip install 'gpuplan[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        problem = small_problem(required=True)
        plan = gpuplan.solve(problem, time_limit_s=20, workers=2, partitions=2, ray="auto")
    finally:
        ray.shutdown()
    verify(plan, problem)
    accounted(plan, problem)
    assert plan.status.has_solution
    assert plan.stats["partition_ray"] is True and plan.stats["parts_missing"] == 0


def test_ray_without_parts_is_invalid_input(capsys):
    code = main(["solve", str(REFUSED / "more_parts_than_nodes.json"), "--ray"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--ray" in err and "partitions > 1" in err

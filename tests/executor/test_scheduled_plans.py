"""Scheduled plans: the executor follows the plan's order (precedences, queues on a GPU or a node),
fails the successors of a failed task, re-plans the unstarted part from now, and resumes in order.

Order is checked on the wall times the tasks themselves record (`t` in taskprog's lines): a task that
must wait for another starts after that one wrote its last line, whatever the machine's load.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from exec_helpers import FAST, commands, make_executor, records, run, run_args, sim_fleet
from hypothesis import given, settings
from hypothesis import strategies as st

import gpuplan
from gpuplan.executor import Executor
from gpuplan.executor import replan as replan_module
from gpuplan.executor.replan import build_problem
from gpuplan.executor.scheduling import held, planned_on
from gpuplan.executor.state import TaskState


def sched_problem(tasks: list[dict[str, Any]], gpus: int = 1, **node: Any) -> gpuplan.Problem:
    """A scheduled problem (makespan) on node sim0 with GPUs g0.. of the simulated fleet."""
    return gpuplan.Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80, "cost_per_hour": 2.0}],
            "nodes": [{"id": "sim0", "gpus": [{"id": f"g{k}", "type": "A100"} for k in range(gpus)], **node}],
            "objective": {"kind": "makespan"},
            "tasks": tasks,
        }
    )


def sched_plan(problem: gpuplan.Problem) -> gpuplan.Plan:
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5, workers=1)
    assert plan.status.has_solution and all(a.start_h is not None for a in plan.assignments)
    return plan


def times(plan: gpuplan.Plan) -> dict[str, tuple[list[str], float, float]]:
    return {a.task: (a.gpus, a.start_h or 0.0, a.end_h or 0.0) for a in plan.assignments}


def t_start(out: Path, task: str, attempt: int = -1) -> float:
    return float(records(out, task, "starts")[attempt]["t"])


def t_done(out: Path, task: str) -> float:
    (done,) = records(out, task, "done")
    return float(done["t"])


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state" / "journal.sqlite")


def test_a_chain_on_one_gpu_runs_in_order(tmp_path: Path, out: Path) -> None:
    """a -> b -> c at share 0.3: the GPU has room for all three at once, the precedences keep them apart."""
    problem = sched_problem(
        [
            {"id": "a", "gpu_share": 0.3, "work_h": 1},
            {"id": "b", "gpu_share": 0.3, "work_h": 1, "after": ["a"]},
            {"id": "c", "gpu_share": 0.3, "work_h": 1, "after": ["b"]},
        ]
    )
    plan = sched_plan(problem)
    assert [(g, s) for g, s, _ in times(plan).values()] == [(["g0"], 0.0), (["g0"], 1.0), (["g0"], 2.0)]
    result = run(make_executor(tmp_path, problem, plan, commands(plan, out, sleep=0.2), sim_fleet()))
    assert result.exit_code == 0 and result.counts == {"done": 3}, result.tasks
    assert t_done(out, "a") <= t_start(out, "b") and t_done(out, "b") <= t_start(out, "c")
    assert all(len(records(out, k, "starts")) == 1 for k in "abc")


def test_a_chain_across_gpus_waits_for_its_predecessors(tmp_path: Path, out: Path) -> None:
    """a on g0 -> b on g1 -> c on g0: b's GPU is free from the start, b still waits for a."""
    problem = sched_problem(
        [
            {"id": "a", "work_h": 1},
            {"id": "b", "work_h": 1, "after": ["a"]},
            {"id": "c", "work_h": 1, "after": ["b"]},
        ],
        gpus=2,
    )
    solved = sched_plan(problem)
    # the solver's chain with b on the other GPU: as valid a plan, where only `after` orders a and b
    moved = [a.model_copy(update={"gpus": ["g1"]}) if a.task == "b" else a for a in solved.assignments]
    plan = solved.model_copy(update={"assignments": moved})
    assert times(plan) == {"a": (["g0"], 0, 1), "b": (["g1"], 1, 2), "c": (["g0"], 2, 3)}
    result = run(make_executor(tmp_path, problem, plan, commands(plan, out, sleep=0.3), sim_fleet()))
    assert result.counts == {"done": 3}, result.tasks
    assert t_done(out, "a") <= t_start(out, "b") and t_done(out, "b") <= t_start(out, "c")


def test_tasks_queued_on_one_gpu_never_overlap(tmp_path: Path, out: Path) -> None:
    """x [0-2 h] and y [0-1 h] share g0, z [1-2 h] follows y. x ends early and frees room for z, but
    z runs only after y: the plan never put y and z on g0 together (room alone would start z)."""
    problem = sched_problem(
        [
            {"id": "x", "gpu_share": 0.5, "work_h": 2},
            {"id": "y", "gpu_share": 0.5, "work_h": 1},
            {"id": "z", "gpu_share": 0.5, "work_h": 1},
        ]
    )
    plan = sched_plan(problem)
    assert times(plan) == {"x": (["g0"], 0, 2), "y": (["g0"], 0, 1), "z": (["g0"], 1, 2)}
    spec = commands(plan, out, sleep=0.2, y={"--sleep": 1.2})
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 3}, result.tasks
    assert t_done(out, "y") <= t_start(out, "z")
    # x and y were started together (planned together), before either ended
    db = _db(tmp_path)
    span = {r[0]: (r[1], r[2]) for r in db.execute("SELECT task, t_start, t_end FROM attempts")}
    assert max(span["x"][0], span["y"][0]) < min(span["x"][1], span["y"][1])


def test_tasks_queued_on_one_node_by_cpu_never_overlap(tmp_path: Path, out: Path) -> None:
    """p and q each take the node's 8 cores: planned one after the other on two GPUs, q waits for p
    although its own GPU is free."""
    problem = sched_problem(
        [
            {"id": "p", "gpu_share": 0.5, "work_h": 1, "cpu_cores": 8},
            {"id": "q", "gpu_share": 0.5, "work_h": 1, "cpu_cores": 8},
        ],
        gpus=2,
        cpu_cores=8,
    )
    solved = sched_plan(problem)
    # the same schedule with q on the other GPU: a plan just as valid, where only the node orders them
    moved = [a if a.task == "p" else a.model_copy(update={"gpus": ["g1"]}) for a in solved.assignments]
    plan = solved.model_copy(update={"assignments": moved})
    assert times(plan) == {"p": (["g0"], 0, 1), "q": (["g1"], 1, 2)}
    result = run(make_executor(tmp_path, problem, plan, commands(plan, out, sleep=0.4), sim_fleet()))
    assert result.counts == {"done": 2}, result.tasks
    assert t_done(out, "p") <= t_start(out, "q")


def test_a_failed_predecessor_stops_its_successors_with_the_reason(tmp_path: Path, out: Path) -> None:
    """a fails twice (one retry): b and c (a -> b -> c) never start and say why; d, queued behind
    them on g0 but not after them, still runs once a has given up the GPU."""
    problem = sched_problem(
        [
            {"id": "a", "work_h": 1},
            {"id": "b", "work_h": 1, "after": ["a"]},
            {"id": "c", "work_h": 1, "after": ["b"]},
            {"id": "d", "work_h": 1},
        ]
    )
    plan = sched_plan(problem)
    spec = commands(plan, out, sleep=0.05, a={"--fail": 7, "max_retries": 1})
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.exit_code == 3
    assert result.counts == {"failed": 3, "done": 1}, result.tasks
    assert result.tasks["a"]["attempts"] == 2 and "exit code 7" in result.tasks["a"]["reason"]
    assert result.tasks["b"]["reason"].startswith("not started: predecessor 'a' failed")
    assert result.tasks["c"]["reason"].startswith("not started: predecessor 'b' failed")
    assert result.tasks["b"]["attempts"] == result.tasks["c"]["attempts"] == 0
    assert not records(out, "b", "starts") and not records(out, "c", "starts")
    blocked = [r[0] for r in _db(tmp_path).execute("SELECT task FROM events WHERE kind='blocked'")]
    assert sorted(blocked) == ["b", "c"]


def test_a_gpu_failure_replans_the_unstarted_tasks_with_after_kept(
    tmp_path: Path, out: Path, uuids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """a and c run on g0, b (after a) is planned after them; g0 fails mid-run: a and c move to g1,
    and the re-plan keeps b after a, so b starts only once a is done on its new GPU."""
    problem = sched_problem(
        [
            {"id": "a", "gpu_share": 0.5, "work_h": 1},
            {"id": "b", "gpu_share": 0.5, "work_h": 1, "after": ["a"]},
            {"id": "c", "gpu_share": 0.5, "work_h": 1},
        ],
        gpus=2,
    )
    plan = sched_plan(problem)
    assert all(g == ["g0"] for g, _, _ in times(plan).values())
    sent: list[gpuplan.Problem] = []
    real = replan_module.replan

    def spy(*args: Any, **kwargs: Any) -> replan_module.Replan:
        result = real(*args, **kwargs)
        sent.append(result.problem)
        return result

    monkeypatch.setattr(replan_module, "replan", spy)
    spec = commands(plan, out, sleep=0.3, a={"--sleep": 1.5})
    fleet = sim_fleet([{"at_s": 0.6, "gpu": "g0", "fail": True}])
    result = run(make_executor(tmp_path, problem, plan, spec, fleet))
    assert result.counts == {"done": 3}, result.tasks
    assert sent, "no re-plan"
    after = {t.id: t.after for t in sent[0].tasks}
    assert after["b"] == ["a"]  # a was not done at the fault: the precedence is kept
    assert records(out, "a", "done")[0]["cvd"] == uuids["g1"]
    assert records(out, "b", "done")[0]["cvd"] == uuids["g1"]
    assert t_done(out, "a") <= t_start(out, "b")
    assert len(records(out, "b", "starts")) == 1
    # the journal holds the re-plan's schedule, from the run's start: b after a
    row = dict(_db(tmp_path).execute("SELECT id, start_h FROM tasks").fetchall())
    end_a = _db(tmp_path).execute("SELECT end_h FROM tasks WHERE id='a'").fetchone()[0]
    assert row["b"] >= end_a - 1e-9


def test_a_restarted_head_resumes_in_order_without_starting_a_task_twice(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor dies just after spawning y; the restarted one adopts y, keeps z behind y (its
    planned order, read back from the journal, while x has left room) and w after z."""
    problem = sched_problem(
        [
            {"id": "x", "gpu_share": 0.5, "work_h": 2},
            {"id": "y", "gpu_share": 0.5, "work_h": 1},
            {"id": "z", "gpu_share": 0.5, "work_h": 1},
            {"id": "w", "gpu_share": 0.5, "work_h": 1, "after": ["z"]},
        ]
    )
    plan = sched_plan(problem)
    planned = times(plan)
    first, second = sorted(("y", "z"), key=lambda k: planned[k][1])  # y and z: one after the other
    assert planned[first][2] <= planned[second][1] and planned["w"][1] >= planned["z"][2]
    spec = commands(plan, out, sleep=0.2, **{first: {"--sleep": 1.2}})

    class Crash(BaseException):
        """The executor dying at a precise point."""

    real = Executor._mark_running

    def crash_after(self: Executor, a: Any) -> None:
        real(self, a)
        if a.task == first:
            raise Crash

    monkeypatch.setattr(Executor, "_mark_running", crash_after)
    ex = make_executor(tmp_path, problem, plan, spec, sim_fleet())
    with pytest.raises(Crash):
        ex.run(max_s=20)
    ex.close()
    monkeypatch.setattr(Executor, "_mark_running", real)
    assert not records(out, second, "starts")
    deadline = time.monotonic() + 10
    while not records(out, first, "starts") and time.monotonic() < deadline:
        time.sleep(0.01)  # its wrapper claimed the attempt and started it: the new executor adopts it
    result = run(make_executor(tmp_path, problem, plan, spec, sim_fleet()))
    assert result.counts == {"done": 4}, result.tasks
    assert all(len(records(out, k, "starts")) == 1 for k in "xyzw")
    assert t_done(out, first) <= t_start(out, second)
    assert t_done(out, "z") <= t_start(out, "w")
    kinds = [r[0] for r in _db(tmp_path).execute("SELECT kind FROM events WHERE task=?", (first,))]
    assert "adopt" in kinds


def test_the_replan_problem_starts_now() -> None:
    """build_problem: done predecessors leave `after`; releases, due times and deadlines move back by
    the elapsed hours (a past deadline is dropped); a running task keeps no time constraint."""
    problem = sched_problem(
        [
            {"id": "a", "work_h": 1},
            {"id": "r", "work_h": 1, "release_h": 0.5, "deadline_h": 2},
            {"id": "b", "work_h": 1, "after": ["a", "r"]},
            {"id": "d", "work_h": 1, "release_h": 2, "deadline_h": 3, "due_h": 2.5},
            {"id": "e", "work_h": 1, "release_h": 0.5, "deadline_h": 1.2, "due_h": 1},
        ],
        gpus=2,
    )
    rp = build_problem(
        problem,
        running={"r": ["g0"]},
        pending=["b", "d", "e"],
        excluded={"g1"},
        migration_cost=10,
        elapsed_h=1.5,
    )
    tasks = {t.id: t for t in rp.tasks}
    assert sorted(tasks) == ["b", "d", "e", "r"]
    assert tasks["b"].after == ["r"]
    assert (tasks["d"].release_h, tasks["d"].deadline_h, tasks["d"].due_h) == (0.5, 1.5, 1.0)
    assert (tasks["e"].release_h, tasks["e"].deadline_h, tasks["e"].due_h) == (0.0, None, 0.0)
    r = tasks["r"]
    assert (r.current_gpus, r.release_h, r.deadline_h, r.due_h) == (["g0"], 0.0, None, None)
    # no time elapsed: the times are the problem's own
    same = build_problem(problem, running={}, pending=["d"], excluded=set(), migration_cost=0)
    assert (same.tasks[0].release_h, same.tasks[0].deadline_h) == (2.0, 3.0)


@pytest.mark.clock
def test_a_release_is_honoured_in_wall_time(tmp_path: Path, out: Path) -> None:
    """late (release 1 h) starts no earlier than the run's start + 1 h x hour_s (0.8 s here)."""
    problem = sched_problem(
        [
            {"id": "early", "gpu_share": 0.5, "work_h": 1},
            {"id": "late", "gpu_share": 0.5, "work_h": 1, "release_h": 1},
        ]
    )
    plan = sched_plan(problem)
    settings = FAST.model_copy(update={"hour_s": 0.8})
    ex = make_executor(tmp_path, problem, plan, commands(plan, out, sleep=0.05), sim_fleet(), settings)
    epoch = ex.epoch
    result = run(ex)
    assert result.counts == {"done": 2}
    assert t_start(out, "early") < epoch + 0.8 <= t_start(out, "late")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_the_launch_rule_alone_never_overloads_a_gpu_and_never_deadlocks(data: st.DataObject) -> None:
    """Rules (a) and (c) in an event simulation, without the room check, on the solver's schedules of
    random tasks (shares, gangs, precedences) whose real durations are 0.1x to 3x the planned ones:
    every task runs, after its predecessors, and no GPU ever carries more than a share of 1."""
    n = data.draw(st.integers(2, 8), label="tasks")
    specs: list[dict[str, Any]] = []
    for i in range(n):
        gang = data.draw(st.sampled_from([1, 1, 1, 2]))
        spec: dict[str, Any] = {"id": f"t{i}", "work_h": data.draw(st.sampled_from([0.5, 1.0, 2.0]))}
        if gang == 2:
            spec["gpus"] = 2
        else:
            spec["gpu_share"] = data.draw(st.sampled_from([0.25, 0.5, 1.0]))
        spec["after"] = [f"t{j}" for j in range(i) if data.draw(st.booleans(), label=f"t{j}->t{i}")]
        specs.append(spec)
    plan = sched_plan(sched_problem(specs, gpus=3))
    tasks = {
        a.task: TaskState(
            id=a.task,
            ord=k,
            state="queued",
            gpus=list(a.gpus),
            share=next(float(s.get("gpu_share", 1.0)) for s in specs if s["id"] == a.task),
            start_h=a.start_h,
            end_h=a.end_h,
            after=tuple(next(s["after"] for s in specs if s["id"] == a.task)),
        )
        for k, a in enumerate(plan.assignments)
    }
    real = {
        a.task: ((a.end_h or 0) - (a.start_h or 0)) * data.draw(st.floats(0.1, 3.0)) for a in plan.assignments
    }
    now, ends, began = 0.0, {}, {}
    assert len(tasks) == n
    while True:
        on = planned_on(tasks.values())
        for t in sorted(tasks.values(), key=lambda t: (t.start_h, t.ord)):
            if t.state != "queued" or any(tasks[p].state != "done" for p in t.after) or held(t, on):
                continue
            t.state, began[t.id], ends[t.id] = "running", now, now + real[t.id]
            load: dict[str, float] = {}
            for u in tasks.values():
                if u.state == "running":
                    for g in u.gpus:
                        load[g] = load.get(g, 0.0) + u.share
            assert max(load.values()) <= 1 + 1e-9, (now, load)
        running = [t for t in tasks.values() if t.state == "running"]
        if not running:
            assert all(t.state == "done" for t in tasks.values()), "deadlock"
            break
        now = min(ends[t.id] for t in running)
        for t in running:
            if ends[t.id] <= now:
                t.state = "done"
    for t in tasks.values():
        assert all(ends[p] <= began[t.id] for p in t.after)


def test_a_task_waits_for_a_running_task_that_a_replan_put_after_it() -> None:
    """A re-plan may give a running task a later slot than a pending one on its GPU: the pending task
    waits for it to end rather than run beside a task the plan does not put beside it; a task the
    plan puts beside the running one does not wait."""
    running = TaskState(id="r", ord=0, state="running", gpus=["g0"], start_h=2.0, end_h=3.0)
    pending = TaskState(id="p", ord=1, state="queued", gpus=["g0"], start_h=1.0, end_h=2.0)
    beside = TaskState(id="b", ord=2, state="queued", gpus=["g0"], start_h=2.5, end_h=3.5)
    assert held(pending, planned_on([running, pending]))
    assert not held(beside, planned_on([running, beside]))
    running.state = "done"
    assert not held(pending, planned_on([running, pending]))


def test_gpuplan_run_takes_hour_seconds_for_releases(tmp_path: Path, out: Path) -> None:
    """`gpuplan run --hour-seconds 0.5`: a task released at 1 h starts no earlier than 0.5 s into the
    run (a lower bound: load only makes it later); 0 is refused (exit 2, naming the field)."""
    problem = sched_problem(
        [
            {"id": "now", "gpu_share": 0.5, "work_h": 1},
            {"id": "later", "gpu_share": 0.5, "work_h": 1, "release_h": 1},
        ]
    )
    plan = sched_plan(problem)
    (tmp_path / "problem.json").write_text(problem.model_dump_json())
    (tmp_path / "plan.json").write_text(plan.model_dump_json())
    (tmp_path / "commands.json").write_text(commands(plan, out, sleep=0.05).model_dump_json())
    cli = [sys.executable, "-m", "gpuplan.cli", *run_args(tmp_path, "-q", "--sample-interval", "0.05")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    bad = subprocess.run([*cli, "--hour-seconds", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "hour_s" in bad.stderr, bad.stderr
    done = subprocess.run(
        [*cli, "--hour-seconds", "0.5"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["counts"] == {"done": 2}
    epoch = json.loads(_db(tmp_path).execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0])
    assert t_start(out, "later") >= epoch + 0.5


def test_a_running_cpu_only_task_goes_into_the_replan_without_current_gpus() -> None:
    """A CPU-only task takes no GPU, so it cannot be pinned by current_gpus (the model refuses even an
    empty list): the re-plan problem used to fail to validate while one ran."""
    problem = sched_problem([{"id": "g", "work_h": 1}, {"id": "etl", "gpus": 0, "cpu_cores": 1, "work_h": 1}])
    rp = build_problem(problem, running={"etl": []}, pending=["g"], excluded=set(), migration_cost=10)
    assert {t.id: t.current_gpus for t in rp.tasks} == {"g": None, "etl": None}

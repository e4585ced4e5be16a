"""The makespan bound of the scheduled program (`makespan_bound`): never above the optimum, on tiny
random scheduled programs (the schedule brute force) and on small random flexible job shops (the
benchmark's plain CP-SAT model, which knows nothing of the bound); the machine-set, parallel-machine
and grid parts each raise it where the older bounds fall short; the plan's bound uses it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.fjsp import solve_plain_cpsat
from benchmarks.fjspdata import FjspInstance, to_problem
from gpuplan.api import solve
from gpuplan.models import Problem, Status
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.schedule import (
    ScheduleProgram,
    _energy,
    _parallel,
    ends,
    lower_bound,
    makespan_bound,
    schedule_program,
    tails,
    time_grid,
)
from tests.oracles import schedule_brute_force
from tests.strategies import makespan_only, schedule_of, scheduled_programs

INF = float("inf")


def fjsp_program(inst: FjspInstance) -> ScheduleProgram:
    return schedule_program(compile_fleet(Problem.model_validate(to_problem(inst))))


@settings(max_examples=40, deadline=None)
@given(scheduled_programs())
def test_never_above_the_brute_force_makespan(sp: ScheduleProgram) -> None:
    sp = makespan_only(sp)
    ref = schedule_brute_force(sp)
    if ref is None:
        return
    _, assign, start = ref
    placed = assign[:, 0] >= 0
    best = float(ends(sp, assign, start)[placed].max(initial=0.0))
    assert ref[0] == pytest.approx(best)
    assert makespan_bound(sp) <= best + 1e-9
    assert lower_bound(sp) <= best + 1e-9


@st.composite
def job_shops(draw: st.DrawFn) -> FjspInstance:
    """2-5 jobs of 1-3 operations on 2-4 machines, each operation on 1-3 machines for 1-6 units."""
    machines = draw(st.integers(2, 4))
    jobs = []
    for _ in range(draw(st.integers(2, 5))):
        ops = []
        for _ in range(draw(st.integers(1, 3))):
            ms = draw(st.lists(st.integers(0, machines - 1), min_size=1, max_size=3, unique=True))
            ops.append([(m, draw(st.integers(1, 6))) for m in sorted(ms)])
        jobs.append(ops)
    return FjspInstance("random", machines, jobs)


@settings(max_examples=40, deadline=None)
@given(job_shops())
def test_never_above_the_plain_cpsat_optimum_of_a_job_shop(inst: FjspInstance) -> None:
    ref = solve_plain_cpsat(inst, 10.0, 1, 0)
    assert ref["status"] == "optimal"
    assert makespan_bound(fjsp_program(inst)) <= ref["objective"] + 1e-9


def test_machine_set_bound_counts_tasks_that_fit_one_class_only() -> None:
    """Three 2 h tasks run on A only, three 1 h tasks on A or B: the whole fleet's area gives
    (6 + 3) / 2, the set {A} gives 6, which the plan (small ones on B) meets."""
    types = [{"name": "A", "memory_gb": 80}, {"name": "B", "memory_gb": 80}]
    nodes = [{"id": "n", "gpu_counts": {"A": 1, "B": 1}}]
    tasks = [{"id": f"a{i}", "duration_h": {"A": 2}} for i in range(3)]
    tasks += [{"id": f"b{i}", "duration_h": {"A": 1, "B": 1}} for i in range(3)]
    sp = schedule_of({"gpu_types": types, "nodes": nodes, "tasks": tasks}, [0] * 6, [INF] * 6, [INF] * 6,
                     [1] * 6, [], w=(1.0, 0.0, 0.0))  # fmt: skip
    assert makespan_bound(sp) == pytest.approx(6.0)


def test_heads_and_tails_enter_the_machine_set_bound() -> None:
    """Job 0: m0 for 1 then m1 for 3; job 1: m1 for 3 then m0 for 1. Machine m1 holds 6 units
    between them, which the critical path (4) and the whole-fleet area ((1 + 3 + 3 + 1) / 2) miss; the
    optimum is 6 too (m1 runs job 1's operation, then job 0's)."""
    inst = FjspInstance("x", 2, [[[(0, 1)], [(1, 3)]], [[(1, 3)], [(0, 1)]]])
    sp = fjsp_program(inst)
    p = np.array([1.0, 3.0, 3.0, 1.0])
    assert tails(sp, p, np.ones(4, dtype=bool)).tolist() == [3.0, 0.0, 1.0, 0.0]
    assert makespan_bound(sp) == pytest.approx(6.0)
    assert solve_plain_cpsat(inst, 10.0, 1, 0)["objective"] == 6


def test_parallel_machine_bound_beats_the_energy_bound() -> None:
    """Heads (1, 1, 0, 0), tails (2, 1, 2, 2), times (2, 3, 2, 1) on two GPUs: the energy bound
    tops at 5 (all four: 0 + 1 + 8 / 2), Carlier's at (0 + 0 + 8 + 1 + 2) / 2 = 5.5."""
    h = np.array([1.0, 1.0, 0.0, 0.0])
    q = np.array([2.0, 1.0, 2.0, 2.0])
    p = np.array([2.0, 3.0, 2.0, 1.0])
    assert _energy(h, q, p, 2.0) == pytest.approx(5.0)
    assert _parallel(h, q, p, np.ones(4, dtype=np.int64), 2) == pytest.approx(5.5)
    # A gang of 2 counts twice: both its copies' heads are among the two smallest.
    assert _parallel(h[:1], q[:1], p[:1], np.array([2]), 2) == pytest.approx((2 + 4 + 4) / 2)


def test_the_bound_is_rounded_up_to_the_time_grid() -> None:
    """Three 1 h tasks on two GPUs: area 1.5, every plan ends at a whole hour, so 2; with a
    0.5 h task the grid is tenths of an hour."""
    types = [{"name": "A", "memory_gb": 80}]
    nodes = [{"id": "n", "gpu_counts": {"A": 2}}]

    def sp_of(hours: list[float]) -> ScheduleProgram:
        tasks = [{"id": f"t{i}", "duration_h": {"A": h}} for i, h in enumerate(hours)]
        n = len(hours)
        return schedule_of({"gpu_types": types, "nodes": nodes, "tasks": tasks}, [0] * n, [INF] * n,
                           [INF] * n, [1] * n, [], w=(1.0, 0.0, 0.0))  # fmt: skip

    assert time_grid(sp_of([1, 1, 1])) == 1.0
    assert makespan_bound(sp_of([1, 1, 1])) == pytest.approx(2.0)
    assert time_grid(sp_of([1, 1, 0.5])) == 10.0
    assert makespan_bound(sp_of([1, 1, 0.5])) == pytest.approx(1.3)
    assert time_grid(sp_of([1, 1, 1 / 3])) is None
    assert makespan_bound(sp_of([1, 1, 1 / 3])) == pytest.approx(7 / 6)


def test_solve_proves_a_plan_that_meets_the_bound_optimal() -> None:
    """Four machines, jobs whose work on machine 0 alone (10 units) sets the optimum: the plan
    is optimal and its bound is the machine-set bound."""
    jobs = [[[(0, 3)], [(1, 1), (2, 1)]], [[(0, 3)], [(2, 2), (3, 2)]], [[(1, 1)], [(0, 4)]]]
    inst = FjspInstance("x", 4, jobs)
    sp = fjsp_program(inst)
    floor = makespan_bound(sp)
    plan = solve(Problem.model_validate(to_problem(inst, 10.0, 1)))
    assert plan.status is Status.OPTIMAL
    assert plan.bound is not None and plan.bound >= floor - 1e-9
    assert plan.objective == pytest.approx(floor)

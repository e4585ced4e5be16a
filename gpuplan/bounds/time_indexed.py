r"""A time-indexed lower bound on the makespan of a scheduled program, proven by SCIP.

Destructive lower bounding (A. Klein and R. Scholl, "Computing lower bounds by destructive
improvement", EJOR 112, 1999): starting from the cheap makespan bound :math:`L`
(:func:`gpuplan.program.schedule.makespan_bound`), ask "can every task that must be placed end by
:math:`K/\sigma`?" for :math:`K = \lceil \sigma L \rceil, \lceil \sigma L \rceil + 1, \dots` on
the time grid :math:`1/\sigma` h (:func:`gpuplan.program.schedule.time_grid`), of a relaxation with
K slots. Each "no" (SCIP proves the relaxation infeasible) raises the bound to :math:`(K+1)/\sigma`;
the first "yes", an answer not found in time, or reaching the makespan some plan has ends it (and,
when paced, questions left that could not all be asked in time at the last one's pace). Each
question is a feasibility problem, smallest first, so no incumbent is needed to ask it.

Per task :math:`t` that must be placed (:math:`R^*`), per class :math:`c` it is eligible for that
holds a usable GPU, and per start slot :math:`s`, a binary :math:`x_{tcs}`:

.. math::

    \sum_{c,s} x_{tcs} = 1, \qquad
    s \in [\lfloor \sigma h_t \rfloor,\; K - \lfloor \sigma d_{tc} \rfloor - \lfloor \sigma q_t \rfloor],

    \sum_{t: k_t = 1} \rho_t \sum_{s \le u < s + \lfloor \sigma d_{tc} \rfloor} x_{tcs} \le \bar\rho\, m_c
    \quad \forall c, u, \qquad
    \sum_{t} k_t \rho_t \sum_{c,\, s \le u < s + \lfloor \sigma d_{tc} \rfloor} x_{tcs}
    \le \bar\rho \sum_c m_c \quad \forall u \;(\text{with gangs}),

    \sum_{c,\, s \le u} x_{bcs} \le \sum_{c,\, s + \lfloor \sigma d_{ac} \rfloor \le u} x_{acs}
    \quad \forall (a, b) \in P,\, u,

with :math:`h_t, q_t` the heads and tails at the fastest durations, :math:`m_c` the usable GPUs of
class c, :math:`\rho_t` the share as an integer :math:`\lfloor 1000\,\text{share} \rfloor` and
:math:`\bar\rho = 1000` per GPU (host slots, CPU-only tasks and shares of 0 take no row). The
precedence rows are the strong (disaggregated) form: b started by u implies a ended by u.

It is a relaxation: map a feasible plan's start :math:`S_t` to slot :math:`\lfloor \sigma S_t
\rfloor` and its duration to :math:`\lfloor \sigma d \rfloor` on one of its GPUs' classes. As
:math:`\lfloor a + b \rfloor \ge \lfloor a \rfloor + \lfloor b \rfloor`, precedences, releases,
heads and tails still hold, and the tasks covering slot u all run at the instant just before
:math:`(u+1)/\sigma`, so a GPU's shares (their floors) fit there; a gang, which may span classes,
counts on the pool only, with one of its classes' durations (at most its own). GPU memory, node CPU
and host memory, spread groups and optional tasks are left out. So when the relaxation has no
solution every plan's makespan is at least :math:`(K+1)/\sigma`. On a flexible job shop (one GPU
per type, whole GPUs, no gangs) it is the problem itself on the grid, and with integral times
exact.

Why: CP-SAT closes small job shops by search, late or never (the Kacem k4 instance took it 33-37 s;
SCIP answered the question at 10 on this model in about 4 s), while time-indexed formulations are known
for their strong LP relaxations (Sousa and Wolsey, Math. Programming 54, 1992). Its size grows with
the horizon in slots, so it runs only within `MAX_VARIABLES` and `MAX_COEFFICIENTS`.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.interrupt import run_stoppable
from gpuplan.program.schedule import (
    ScheduleProgram,
    fastest,
    heads,
    makespan_bound,
    must_place,
    tails,
    time_grid,
)

#: Largest number of binaries (task, class, start slot) the model may have.
MAX_VARIABLES = 15_000

#: Largest number of nonzero coefficients the model may have (it is built in Python).
MAX_COEFFICIENTS = 600_000

#: Integer units of one GPU's share.
SHARE_UNITS = 1000


@dataclass(frozen=True)
class TimeIndexedBound:
    """The outcome: `makespan` a proven lower bound in hours (the cheap one when no question was
    answered "no"; None when the model did not run); `status` the last answer ('infeasible':
    every question up to the makespan given was "no"; 'feasible', 'unknown') or why it did not
    run; `slots` the last K asked; `questions` how many were asked."""

    makespan: float | None
    status: str
    variables: int = 0
    slots: int = 0
    seconds: float = 0.0
    questions: int = 0


def time_indexed_makespan(
    sp: ScheduleProgram,
    upper: float | Callable[[], float],
    deadline: float,
    stop: threading.Event | None = None,
    on_bound: Callable[[float], None] | None = None,
    paced: bool = False,
) -> TimeIndexedBound:
    """A lower bound on every plan's makespan (module docstring), by SCIP until `deadline` (a
    time.monotonic() instant) or `stop` is set (from another thread). `upper` is a makespan some
    plan reaches (hours), or a function giving the best so far (a search running beside): no
    question is asked at or above it, and a question it passes is dropped. `on_bound` is told each
    raised bound (hours). `paced`: stop once the questions left below `upper`, each taking as long
    as the last one answered, cannot all be asked by `deadline`: the bound can no longer prove the
    best plan, and the CPU it would take goes back to the search beside it."""
    best = upper if callable(upper) else (lambda: upper)
    started = time.monotonic()
    grid = time_grid(sp)
    if grid is None:
        return TimeIndexedBound(None, "no time grid")
    need = must_place(sp)
    if not need.any() or not math.isfinite(best()):
        return TimeIndexedBound(None, "nothing to bound")
    f = sp.fleet
    usable = f.usable_per_class()
    ok = f.eligible_c & (usable > 0)[None, :] & np.isfinite(sp.duration_c)
    p_min = fastest(sp)
    if not np.isfinite(p_min[need]).all():
        return TimeIndexedBound(None, "a task has no usable GPU")
    h = heads(sp, p_min)
    q = tails(sp, p_min, need)
    dur = np.floor(np.where(ok, sp.duration_c, 0.0) * grid + 1e-6).astype(np.int64)
    lo = np.floor(h * grid + 1e-6).astype(np.int64)
    tail = np.floor(q * grid + 1e-6).astype(np.int64)
    rho = np.floor(np.where(f.cpu_only, 0.0, f.share) * SHARE_UNITS).astype(np.int64)
    tasks = np.flatnonzero(need).tolist()
    first_k = math.ceil(makespan_bound(sp) * grid - 1e-6)

    def top() -> int:  # a plan ends by `top`: no question at or above it
        return math.ceil(best() * grid - 1e-6)

    status, n_vars, asked, k_slots = "nothing to ask", 0, 0, first_k
    bound = first_k
    for k_slots in itertools.count(first_k):
        if k_slots >= top():
            break
        # options: (task, class, first start, last start)
        options = [
            (t, c, int(lo[t]), k_slots - int(dur[t, c]) - int(tail[t]))
            for t in tasks
            for c in np.flatnonzero(ok[t]).tolist()
            if k_slots - int(dur[t, c]) - int(tail[t]) >= lo[t]
        ]
        n_vars = sum(hi - first + 1 for _, _, first, hi in options)
        if len({t for t, *_ in options}) < len(tasks):  # a task cannot end by K at all
            status, bound = "infeasible", k_slots + 1
            if on_bound is not None:
                on_bound(bound / grid)
            continue
        if n_vars > MAX_VARIABLES:
            status = f"too large ({n_vars:,} variables)"
            break
        coefs = _coefficients(sp, options, dur, rho, need)
        if coefs > MAX_COEFFICIENTS:
            status = f"too large ({coefs:,} coefficients)"
            break
        asked += 1
        began = time.monotonic()
        status = _ask(sp, options, dur, rho, need, deadline, stop, functools.partial(_passed, top, k_slots))
        if status != "infeasible":
            break
        bound = k_slots + 1
        if on_bound is not None:
            on_bound(bound / grid)
        took, left = time.monotonic() - began, top() - bound
        if paced and left > 0 and left * took > deadline - time.monotonic():
            status = f"too slow ({left} questions left at {took:.1f} s each)"
            break
    return TimeIndexedBound(bound / grid, status, n_vars, k_slots, time.monotonic() - started, asked)


def _passed(top: Callable[[], int], k_slots: int) -> bool:
    """Has a plan ending by `k_slots` been found (the question at `k_slots` is moot)?"""
    return top() <= k_slots


def _coefficients(
    sp: ScheduleProgram,
    options: list[tuple[int, int, int, int]],
    dur: np.ndarray,
    rho: np.ndarray,
    need: np.ndarray,
) -> int:
    """The model's nonzeros, counted before building it (resource rows, precedence rows)."""
    f = sp.fleet
    gangs = bool((f.gang[need] > 1).any())
    total = 0
    span: dict[int, list[tuple[int, int, int]]] = {}
    for t, c, first, hi in options:
        n = hi - first + 1
        if rho[t] > 0:
            total += n * int(dur[t, c]) * (int(f.gang[t] == 1) + int(gangs))
        span.setdefault(t, []).append((first, hi, int(dur[t, c])))
    for a, b in sp.pred.reshape(-1, 2).tolist():
        if need[a] and need[b]:
            u_lo = min(s for s, _, _ in span[b])
            u_hi = max(e for _, e, _ in span[b])
            total += (u_hi - u_lo + 1) * (
                sum(e - s + 1 for s, e, _ in span[a]) + sum(e - s + 1 for s, e, _ in span[b])
            )
    return total


def _ask(
    sp: ScheduleProgram,
    options: list[tuple[int, int, int, int]],
    dur: np.ndarray,
    rho: np.ndarray,
    need: np.ndarray,
    deadline: float,
    stop: threading.Event | None,
    moot: Callable[[], bool],
) -> str:
    """SCIP's answer on the relaxation with these start windows: 'infeasible' (proven), 'feasible'
    or 'unknown' (time, stop, the question made moot by a better plan, or SCIP missing)."""
    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("SCIP")
    if solver is None:
        return "unknown"

    def halted() -> bool:  # checked while building too: a build of the largest model takes ~1 s
        return time.monotonic() >= deadline or (stop is not None and stop.is_set()) or moot()

    f = sp.fleet
    usable = f.usable_per_class()
    gangs = bool((f.gang[need] > 1).any())
    by_task: dict[int, list[tuple[int, int, object]]] = {}  # t -> (start, duration, var)
    cover: dict[tuple[int, int], list[tuple[object, int]]] = {}  # (class or -1 = pool, slot) -> terms
    for t, c, first, hi in options:
        if halted():
            return "unknown"
        p = int(dur[t, c])
        for s in range(first, hi + 1):
            x = solver.BoolVar("")
            by_task.setdefault(t, []).append((s, p, x))
            if rho[t] <= 0:
                continue
            for u in range(s, s + p):
                if f.gang[t] == 1:
                    cover.setdefault((c, u), []).append((x, int(rho[t])))
                if gangs:
                    cover.setdefault((-1, u), []).append((x, int(rho[t] * f.gang[t])))
    for xs in by_task.values():
        row = solver.Constraint(1.0, 1.0)
        for _, _, x in xs:
            row.SetCoefficient(x, 1.0)
    pool = int((f.gpu_ok & ~f.host).sum())
    for (c, _), terms in cover.items():
        cap = SHARE_UNITS * (pool if c < 0 else int(usable[c]))
        if sum(a for _, a in terms) <= cap:
            continue  # never binding
        row = solver.Constraint(-solver.infinity(), float(cap))
        for x, a in terms:
            row.SetCoefficient(x, float(a))
    for a, b in sp.pred.reshape(-1, 2).tolist():
        if not (need[a] and need[b]):
            continue
        if halted():
            return "unknown"
        starts_b = sorted(by_task[b], key=lambda o: o[0])
        ends_a = sorted(by_task[a], key=lambda o: o[0] + o[1])
        for u in range(starts_b[0][0], starts_b[-1][0] + 1):
            row = solver.Constraint(-solver.infinity(), 0.0)
            for s, _, x in starts_b:
                if s > u:
                    break
                row.SetCoefficient(x, 1.0)
            for s, p, x in ends_a:
                if s + p > u:
                    break
                row.SetCoefficient(x, -1.0)
    left = deadline - time.monotonic()
    if left <= 0.05 or halted():
        return "unknown"
    solver.SetTimeLimit(max(1, int(left * 1000)))
    code = run_stoppable(lambda: _solve_until(solver, halted), solver.InterruptSolve)
    if code == pywraplp.Solver.INFEASIBLE:
        return "infeasible"
    return "feasible" if code in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE) else "unknown"


def _solve_until(solver: Any, halted: Callable[[], bool]) -> int:
    """`solver.Solve()`, interrupted once `halted()` (checked every 0.05 s)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if halted():
                solver.InterruptSolve()
                return

    watcher = threading.Thread(target=watch, name="gpuplan-ti-stop", daemon=True)
    watcher.start()
    try:
        return int(solver.Solve())
    finally:
        done.set()
        watcher.join()


__all__ = ["MAX_COEFFICIENTS", "MAX_VARIABLES", "TimeIndexedBound", "time_indexed_makespan"]

r"""Tabu search for disjunctive schedules: the flexible job shop inside a scheduled program.

A scheduled program is *disjunctive* (:func:`shop_view`) when no two of its tasks can run on one
GPU at once and nothing else constrains them while they run: every task takes one GPU (gang 1) and
more than half of it, is required, belongs to no spread group, and the CPU and host memory of every
node hold its GPUs' most demanding tasks side by side; and its objective is the makespan alone (no
placement term differs between a task's GPUs). Then a plan is a GPU per task (a *machine*, among
its eligible healthy GPUs, each with the duration of its class) and an order per GPU, and its best
starts are the heads (longest paths over releases, precedences and each GPU's order): the classic
flexible job shop, with releases and any precedence DAG.

For these programs the compiled core (`gpuplan.native._shop`, C) searches the neighbourhood of
Mastrolilli and Gambardella (*Effective neighbourhood functions for the flexible job shop
problem*, J. Scheduling 3, 2000): a critical task taken out of its GPU's order and put back on any
of its GPUs where no cycle can close, ranked by their estimate of the longest path through it, the
best few evaluated exactly, under a tabu list (a task does not go back after the task it left for
a random tenure), returning to the best schedule with a few random moves after ``stall`` steps
without a better one. Of two schedules equally long, the best is the one with fewer critical
tasks: where several longest paths tie (independent jobs or groups of jobs that all end at the
makespan), shortening one of them does not change the makespan, and a restart from a best that
ignored it threw that progress away (on four copies of Kacem k4, 8 s: 12 h at every seed of four,
11 h with the tie-break; `benchmarks/README.md`). Its schedules are semi-active, so every start is
a release or an end. Deadlines (and the horizon) are kept: a schedule that passes one is never the
best.

``workers`` searches run side by side with different seeds (the core releases the GIL), from the
schedule given or, every second one, from another (`also_from`: the strategy gives CP-SAT's best
and the list schedule, since a search started from CP-SAT's best can stay in its basin); the best
is returned. Each returned plan is checked by
:func:`gpuplan.program.schedule.violations` before it leaves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from gpuplan.interrupt import run_stoppable
from gpuplan.program.schedule import ScheduleProgram, makespan, violations

#: Most tasks the search takes (its tabu list has tasks x (tasks + GPUs) entries of 4 bytes).
MAX_TASKS = 3_000

#: Steps without a better schedule before going back to the best with random moves. Short stays
#: pay since the tie-break keeps a best that shortens tied paths: one run of 8 s from the list
#: schedule, seeds 0-3, means at 25 against 200 steps: mk07 141 / 143.5, mk10 202.3 / 204.8, mk11
#: 616 / 621, mk13 394.5 / 400.8, mk15 338.5 / 340, mk06 59.5 / 59, mk11 x 2 624 / 622.8 (before the
#: tie-break, 100 to 500 did best).
STALL_STEPS = 25

#: Moves evaluated exactly per step, the best by their estimates (at most 64).
EXACT_MOVES = 6

#: Tabu tenure: TENURE_MIN steps plus a random number up to tasks / TENURE_DIV.
TENURE_MIN = 5
TENURE_DIV = 20


@dataclass(frozen=True)
class ShopView:
    """The disjunctive program as the core reads it: alternatives and precedences in CSR form."""

    aptr: np.ndarray  # int64 [T + 1]
    amach: np.ndarray  # int64 [A]: GPU index
    adur: np.ndarray  # float64 [A]: hours
    pptr: np.ndarray  # int64 [T + 1]
    plist: np.ndarray  # int64 [E]: predecessors
    sptr: np.ndarray  # int64 [T + 1]
    slist: np.ndarray  # int64 [E]: successors
    release: np.ndarray  # float64 [T]
    deadline: np.ndarray  # float64 [T], inf when none
    n_gpus: int


@dataclass
class ShopResult:
    """The best schedule the searches found (`assign` [T, K], `start` [T] hours) and its makespan."""

    assign: np.ndarray
    start: np.ndarray
    makespan: float
    stats: dict[str, bool | int | float | str] = field(default_factory=dict)


def disjunctive_reason(sp: ScheduleProgram) -> str:
    """Why `sp` is not disjunctive with a makespan-only objective ('' when it is; module docstring)."""
    f = sp.fleet
    if not (sp.w_makespan > 0 and sp.w_completion == 0 and sp.w_tardiness == 0):
        return "the objective has time terms other than the makespan"
    if f.n_tasks == 0 or f.n_tasks > MAX_TASKS:
        return f"{f.n_tasks} tasks (the search takes 1 to {MAX_TASKS})"
    if (f.gang != 1).any() or f.cpu_only.any() or (f.share <= 0.5).any():
        return "some task takes several GPUs, none, or half a GPU or less"
    if f.optional.any():
        return "some task is optional"
    if (f.spread >= 0).any():
        return "some task is in a spread group"
    if not f.shares or f.extra_cap.size:
        return "tasks take further resources"
    if f.w_gpus or f.w_nodes or f.w_balance:
        return "the objective counts GPUs, nodes or balance"
    usable = f.usable_per_class() > 0
    ok = f.eligible_c & usable[None, :]
    if not ok.any(axis=1).all():
        return "some task has no usable GPU"
    cost = np.where(ok, f.cost_c, np.nan)
    if np.nanmax(cost, axis=1).tolist() != np.nanmin(cost, axis=1).tolist():
        return "a task's cost differs between its GPUs"
    if ((f.current >= 0).any(axis=1) & (f.move_cost > 0)).any():
        return "moving a running task costs"
    if f.dataset_charge.size and ((f.dataset >= 0) & (f.dataset_charge[np.maximum(f.dataset, 0)] > 0)).any():
        return "datasets are charged per node"
    d = np.where(ok, sp.duration_c, np.inf)
    if not (d[ok] > 0).all() or not np.isfinite(d[ok]).all():
        return "some duration is not positive and finite"
    for cap, need in ((f.node_cpu, f.cpu), (f.node_ram, f.ram)):
        per_node = np.bincount(f.gpu_node[f.gpu_ok], minlength=f.n_nodes)
        top = np.sort(need)[::-1]
        worst = np.r_[0.0, np.cumsum(top)][np.minimum(per_node, top.size)]
        if (worst > cap * (1 + 1e-9)).any():
            return "node CPU or host memory may bind while tasks run side by side"
    return ""


def shop_view(sp: ScheduleProgram) -> ShopView:
    """The core's arrays of a disjunctive program (call `disjunctive_reason` first)."""
    f = sp.fleet
    n = f.n_tasks
    gpus = np.flatnonzero(f.gpu_ok & ~f.host)
    ok = f.eligible_c[:, f.gpu_class[gpus]]  # [T, usable GPUs]
    t_idx, j = np.nonzero(ok)
    amach = gpus[j].astype(np.int64)
    adur = sp.duration_c[t_idx, f.gpu_class[amach]].astype(np.float64)
    aptr = np.r_[0, np.cumsum(np.bincount(t_idx, minlength=n))].astype(np.int64)
    pred = sp.pred.reshape(-1, 2)
    by_b = np.lexsort((pred[:, 0], pred[:, 1]))
    by_a = np.lexsort((pred[:, 1], pred[:, 0]))
    pptr = np.r_[0, np.cumsum(np.bincount(pred[:, 1], minlength=n))].astype(np.int64)
    sptr = np.r_[0, np.cumsum(np.bincount(pred[:, 0], minlength=n))].astype(np.int64)
    return ShopView(
        aptr=aptr,
        amach=np.ascontiguousarray(amach),
        adur=np.ascontiguousarray(adur),
        pptr=pptr,
        plist=np.ascontiguousarray(pred[by_b, 0], dtype=np.int64),
        sptr=sptr,
        slist=np.ascontiguousarray(pred[by_a, 1], dtype=np.int64),
        release=np.ascontiguousarray(sp.release, dtype=np.float64),
        deadline=np.ascontiguousarray(sp.deadline, dtype=np.float64),
        n_gpus=int(f.n_gpus),
    )


def shop_search(
    sp: ScheduleProgram,
    assign: np.ndarray,
    start: np.ndarray,
    *,
    deadline: float,
    target: float = 0.0,
    also_from: tuple[np.ndarray, np.ndarray] | None = None,
    workers: int = 1,
    seed: int = 0,
    max_steps: int = 0,
    stall_steps: int = STALL_STEPS,
    exact: int = EXACT_MOVES,
    tenure: tuple[int, int] | None = None,
) -> ShopResult:
    """Search from the feasible schedule (`assign`, `start`) of a disjunctive program until
    `deadline` (a time.monotonic() instant), a stop request, `max_steps` steps (0: no limit) or a
    makespan of at most `target` (module docstring). With `also_from` (another feasible schedule),
    every second run starts from it instead. Returns the best schedule, never worse than the one
    given."""
    from gpuplan.native import shop_core

    core = shop_core()
    view = shop_view(sp)
    n = sp.n_tasks
    starts = [(assign, start)] if also_from is None else [(assign, start), also_from]
    begin = [
        (
            np.ascontiguousarray(a[:, 0], dtype=np.int64),
            np.ascontiguousarray(np.lexsort((np.arange(n), s)), dtype=np.int64),
        )
        for a, s in starts
    ]
    stop = np.zeros(1, dtype=np.uint8)
    runs = max(1, int(workers))
    outs = [(np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64)) for _ in range(runs)]
    found: list[tuple[float, int, int, int, bool] | None] = [None] * runs
    errors: list[BaseException] = []
    tenure_lo, tenure_span = tenure if tenure is not None else (TENURE_MIN, max(1, n // TENURE_DIV))

    def one(i: int) -> None:
        try:
            found[i] = core.search(
                n,
                view.n_gpus,
                view.aptr,
                view.amach,
                view.adur,
                view.pptr,
                view.plist,
                view.sptr,
                view.slist,
                view.release,
                view.deadline,
                *begin[i % len(begin)],
                outs[i][0],
                outs[i][1],
                max(0.0, deadline - time.monotonic()),
                int(max_steps),
                float(target),
                int(seed) * 7919 + i,
                int(stall_steps),
                int(exact),
                int(tenure_lo),
                int(tenure_span),
                stop,
            )
        except BaseException as exc:  # pragma: no cover - re-raised below
            errors.append(exc)

    def run_all() -> None:
        threads = [threading.Thread(target=one, args=(i,), name=f"gpuplan-shop-{i}") for i in range(1, runs)]
        for t in threads:
            t.start()
        one(0)
        for t in threads:
            t.join()

    began = time.monotonic()
    run_stoppable(run_all, lambda: stop.fill(1))
    if errors:
        raise errors[0]
    given = makespan(sp, assign, start)
    best_i = min(range(runs), key=lambda i: found[i][0] if found[i] is not None else np.inf)  # type: ignore[index]
    res = found[best_i]
    stats: dict[str, bool | int | float | str] = {
        "shop_s": round(time.monotonic() - began, 4),
        "shop_steps": int(sum(r[1] for r in found if r is not None)),
        "shop_improvements": int(sum(r[2] for r in found if r is not None)),
        "shop_restarts": int(sum(r[3] for r in found if r is not None)),
        "shop_runs": runs,
    }
    if res is None or not np.isfinite(res[0]) or res[0] >= given:
        stats["shop_makespan"] = given
        return ShopResult(assign, start, given, stats)
    new_assign = sp.fleet.empty_assign()
    new_assign[:, 0] = outs[best_i][0]
    new_start = outs[best_i][1].copy()
    bad = violations(sp, new_assign, new_start)
    if bad:
        raise AssertionError(f"the shop search produced an infeasible schedule: {bad[:3]}")
    value = makespan(sp, new_assign, new_start)
    stats["shop_makespan"] = value
    return ShopResult(new_assign, new_start, value, stats)


__all__ = [
    "MAX_TASKS",
    "STALL_STEPS",
    "ShopResult",
    "ShopView",
    "disjunctive_reason",
    "shop_search",
    "shop_view",
]

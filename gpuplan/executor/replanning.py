"""Re-planning during a run: solve the unfinished work again (running tasks pinned by a migration
cost, excluded GPUs left out) and apply the result: moves, queueing, waiting.

The re-plan problem itself is built by `replan`; this module decides when to call it and how the
executor's tasks follow its answer. For a scheduled plan the re-plan's time zero is now: its planned
times, shifted by the hours elapsed since the run started, replace those of every task it covers
(running tasks included), so the launch rule (`scheduling`) compares times of one plan.
"""

from __future__ import annotations

import time

from gpuplan.executor.state import ExecutorBase, TaskState


class ReplanningMixin(ExecutorBase):
    """Call the replanner and move, queue or park tasks by its plan."""

    def _needs_placement(self) -> bool:
        return any(
            t.state == "queued" and (not t.placed or any(g in self.excluded for g in t.gpus))
            for t in self.tasks.values()
        )

    def _replan(self, why: str) -> None:
        """Re-plan the unfinished work and apply it (moves, queueing, waiting)."""
        from gpuplan.executor.replan import replan

        self._replan_needed = False
        self._block_successors()  # a successor of a failed task must not be re-planned without it
        running = {t.id: list(t.attempt.gpus) for t in self.tasks.values() if t.attempt is not None}
        pending = [t.id for t in self.tasks.values() if t.state in ("queued", "waiting")]
        if not pending:
            with self.journal.tx():
                self.journal.event("replan", f"{why}: nothing to re-place")
            return
        started = time.monotonic()
        s = self.settings
        elapsed_h = max(0.0, time.time() - self.epoch) / s.hour_s
        result = replan(
            self.problem,
            running=running,
            pending=pending,
            excluded=set(self.excluded) | self.remote,
            migration_cost=s.migration_cost,
            solver=s.replan_solver,
            time_limit_s=s.replan_time_limit_s,
            workers=s.workers,
            seed=s.seed,
            elapsed_h=elapsed_h,
        )
        plan = result.plan
        took = time.monotonic() - started
        j = self.journal
        moves: list[tuple[TaskState, list[str]]] = []
        with j.tx():
            j.event(
                "replan",
                f"{why}: {plan.status.value} by {plan.solver} in {took:.2f}s, "
                f"{len(plan.assignments)} placed, "
                f"{len(plan.unassigned)} left out"
                + (" (pending tasks made optional)" if result.relaxed else ""),
                data={"solve_s": round(took, 4), "status": plan.status.value, "relaxed": result.relaxed},
            )
            by_task = {a.task: a for a in plan.assignments} if plan.status.has_solution else {}
            placed = {tid: a.gpus for tid, a in by_task.items()}
            for tid in [*running, *pending]:  # the new plan's times and node, from the run's start
                a = by_task.get(tid)
                task = self.tasks[tid]
                if a is None:
                    continue
                if tid in pending or set(a.gpus) != set(running[tid]):
                    task.node = a.node  # a running task stays on its node unless the plan moves it
                if a.start_h is None or a.end_h is None:
                    self._set_times(task, None, None)
                else:
                    self._set_times(task, elapsed_h + a.start_h, elapsed_h + a.end_h)
            for tid in pending:
                task = self.tasks[tid]
                if tid in placed:
                    new = list(placed[tid])
                    if new != task.gpus:
                        old = ", ".join(task.gpus) or "waiting"
                        task.gpus = new
                        j.event("move", f"{old} -> {', '.join(new)} ({why})", task=tid)
                    self._set_task(task, "queued", f"placed by re-plan ({why})")
                else:
                    reason = next(
                        (u.reason for u in plan.unassigned if u.task == tid), plan.message or "no plan"
                    )
                    task.gpus = []
                    task.start_h = task.end_h = None
                    self._set_task(task, "waiting", reason)
                    j.event("wait", f"no GPU for now: {reason}", task=tid)
            for tid, gpus in running.items():
                new = placed.get(tid)
                if new is not None and set(new) != set(gpus):
                    moves.append((self.tasks[tid], list(new)))
        if moves:
            attempts = [t.attempt for t, _ in moves if t.attempt is not None]
            self._stop_attempts(attempts, "the re-plan moved it", requeue=True)
            with j.tx():
                for t, new in moves:
                    if t.state == "queued":
                        j.event("move", f"{', '.join(t.gpus)} -> {', '.join(new)} (re-plan)", task=t.id)
                        t.gpus = new
                        t.moves += 1
                        self._set_task(t, "queued", "moved by re-plan")

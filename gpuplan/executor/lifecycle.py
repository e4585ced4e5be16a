"""Attempt processes: launch (journal first, then spawn), wait and reap (exit codes, retries), stop.

Every process goes through `launcher` (wrapper, claim and exit files, process groups).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

from gpuplan.executor import launcher
from gpuplan.executor.state import Attempt, ExecutorBase, TaskState


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


class LifecycleMixin(ExecutorBase):
    """Launch, poll, reap and stop attempts; a failure uses up a retry, a stop does not."""

    def _start(self, task: TaskState) -> None:
        """Record the attempt as starting (durably), then spawn its wrapper, then record it running."""
        j = self.journal
        run = self.spec.tasks[task.id]
        n = j.exec("SELECT COUNT(*) FROM attempts WHERE task=?", (task.id,)).fetchone()[0] + 1
        now = time.time()
        uuids = [self.device_of[g].uuid for g in task.gpus]
        with j.tx():
            cur = j.exec(
                "INSERT INTO attempts(task, n, gpus, state, dir, log, t_start)"
                " VALUES(?, ?, ?, 'starting', '', '', ?)",
                (task.id, n, json.dumps(task.gpus), now),
            )
            aid = int(cur.lastrowid or 0)
            adir = self.state_dir / "attempts" / f"{aid}-{uuid.uuid4().hex[:8]}"  # never reused
            log = self.state_dir / "logs" / f"{_safe(task.id)}.{n}.log"
            j.exec("UPDATE attempts SET dir=?, log=? WHERE id=?", (str(adir), str(log), aid))
            for g in task.gpus:
                j.exec(
                    "INSERT INTO leases(gpu, task, attempt, state, t_allocated)"
                    " VALUES(?, ?, ?, 'allocated', ?)",
                    (g, task.id, aid, now),
                )
            a = Attempt(
                id=aid,
                task=task.id,
                n=n,
                gpus=list(task.gpus),
                state="starting",
                dir=adir,
                log=log,
                t_start=now,
            )
            task.attempt = a
            self._set_task(task, "starting")
            j.event(
                "start",
                f"attempt {n} on {', '.join(task.gpus)} (CUDA_VISIBLE_DEVICES={','.join(uuids)})",
                task=task.id,
            )
        env = dict(os.environ)
        env.update(run.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
        env["GPUPLAN_TASK_ID"] = task.id
        env["GPUPLAN_ATTEMPT"] = str(n)
        cwd = str(Path(self.cwd, run.cwd)) if run.cwd else self.cwd
        if run.checkpoint_dir:
            ckpt = Path(cwd, run.checkpoint_dir)
            ckpt.mkdir(parents=True, exist_ok=True)
            env["GPUPLAN_CHECKPOINT_DIR"] = str(ckpt)
        try:
            a.proc = launcher.spawn(a.dir, a.log, run.argv, env, cwd)
        except OSError as exc:
            with j.tx():
                launcher.cancel_if_unclaimed(a.dir)
                self._end_attempt(a, "failed", None, f"cannot spawn: {exc}")
                self._after_failure(task, f"cannot spawn: {exc}")
            return
        a.pid = a.proc.pid
        with j.tx():
            self._mark_running(a)

    # finishing tasks ------------------------------------------------------------------------------
    def _poll_attempt(self, a: Attempt) -> tuple[bool, int | None]:
        """(ended, exit code): exit code None when the wrapper vanished without recording one."""
        ex = launcher.read_exit(a.dir)
        if ex is not None:
            if a.proc is not None:
                a.proc.poll()
            return True, int(ex["rc"])
        if a.proc is not None:
            alive = a.proc.poll() is None
        else:
            alive = a.pid is not None and launcher.wrapper_alive(a.pid, a.dir)
        if alive:
            return False, None
        ex = launcher.read_exit(a.dir)
        return True, None if ex is None else int(ex["rc"])

    def _reap(self) -> None:
        for task in list(self.tasks.values()):
            a = task.attempt
            if a is None or a.state not in ("running", "starting"):
                continue
            if a.state == "starting" and a.proc is None and a.pid is None:
                continue
            ended, rc = self._poll_attempt(a)
            if not ended:
                continue
            with self.journal.tx():
                if rc == 0:
                    self._end_attempt(a, "succeeded", 0, "exit code 0")
                    self._set_task(task, "done", f"attempt {a.n} exited 0")
                    self.journal.event("done", f"attempt {a.n} exited 0", task=task.id)
                else:
                    why = "wrapper vanished without an exit code" if rc is None else f"exit code {rc}"
                    self._end_attempt(a, "failed" if rc is not None else "lost", rc, why)
                    self._after_failure(task, why)
            if self._waiting():
                self._replan_needed = True

    def _after_failure(self, task: TaskState, why: str) -> None:
        task.failures += 1
        limit = self.spec.retries(task.id)
        if task.failures <= limit:
            self._set_task(task, "queued", f"retry after {why}")
            self.journal.event("retry", f"{why}; retry {task.failures} of {limit}", task=task.id)
        else:
            self._set_task(task, "failed", f"{why} after {task.failures} attempt(s)")
            self.journal.event("failed", f"{why}; no retries left ({limit} allowed)", task=task.id)

    # stopping -------------------------------------------------------------------------------------
    def _stop_attempts(
        self, attempts: list[Attempt], reason: str, *, requeue: bool, fault: bool = False
    ) -> None:
        """SIGTERM each attempt's group, wait up to the grace period, SIGKILL the rest.

        A task that had already exited on its own is recorded as it ended; the others are `stopped`
        (not a failure: it does not use up a retry) and, with `requeue`, queued again. With `fault`
        their GPU leases end `failed` (the GPU failed under them), else `released`.
        """
        j = self.journal
        pending: list[Attempt] = []
        done_before: dict[int, int] = {}
        with j.tx():
            for a in attempts:
                ex = launcher.read_exit(a.dir)
                if ex is not None:
                    done_before[a.id] = int(ex["rc"])
                    continue
                a.state = "stopping"
                j.exec("UPDATE attempts SET state='stopping' WHERE id=?", (a.id,))
                self._set_task(self.tasks[a.task], "stopping", reason)
                j.event("stop", f"SIGTERM attempt {a.n}: {reason}", task=a.task)
                pending.append(a)
        for a in pending:
            if a.pid and (a.proc is not None or launcher.wrapper_alive(a.pid, a.dir)):
                launcher.terminate(a.pid)
        deadline = time.monotonic() + self.settings.grace_s
        alive = list(pending)
        while alive and time.monotonic() < deadline:
            alive = [a for a in alive if not self._poll_attempt(a)[0]]
            if alive:
                time.sleep(0.01)
        killed = {a.id for a in alive}
        for a in alive:
            if a.pid:
                launcher.kill(a.pid)
        kill_deadline = time.monotonic() + 5.0
        while alive and time.monotonic() < kill_deadline:
            alive = [a for a in alive if not self._poll_attempt(a)[0]]
            if alive:
                time.sleep(0.01)
        with j.tx():
            for a in attempts:
                task = self.tasks[a.task]
                if a.id in done_before:
                    rc = done_before[a.id]
                    if rc == 0:
                        self._end_attempt(a, "succeeded", 0, "exit code 0 (before the stop)")
                        self._set_task(task, "done", f"attempt {a.n} exited 0")
                        j.event("done", f"attempt {a.n} exited 0 before the stop", task=task.id)
                    else:
                        self._end_attempt(a, "failed", rc, f"exit code {rc} (before the stop)")
                        self._after_failure(task, f"exit code {rc}")
                    continue
                ex = launcher.read_exit(a.dir)
                rc = None if ex is None else int(ex["rc"])
                how = "SIGKILL after the grace period" if a.id in killed or rc is None else f"exit code {rc}"
                self._end_attempt(a, "stopped", rc, f"{reason} ({how})", lease="failed" if fault else None)
                task.attempt = None
                self._set_task(task, "queued" if requeue else "stopped", f"stopped: {reason}")

"""Resuming a run: the executor's state from the journal, and the attempts a killed executor left.

An attempt recorded `starting` may or may not have been spawned: the claim file decides (see
`launcher`); an attempt still running is adopted, one that was being stopped is stopped again. The
files are read through the attempt's site (this machine, or the agent on its node).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpuplan.executor.journal import LIVE_ATTEMPT_STATES
from gpuplan.executor.sites import Probe
from gpuplan.executor.state import Attempt, ExecutorBase, TaskState


class RecoveryMixin(ExecutorBase):
    """Load the run's tasks and excluded GPUs from the journal; reconcile live attempts on resume."""

    def _load(self) -> None:
        """Tasks and excluded GPUs from the journal; then reconcile attempts left by a previous run."""
        j = self.journal
        self.tasks = {}
        for r in j.exec("SELECT * FROM tasks ORDER BY ord").fetchall():
            t = self._tasks_by_id.get(r["id"])
            self.tasks[r["id"]] = TaskState(
                id=r["id"],
                ord=r["ord"],
                state=r["state"],
                gpus=json.loads(r["gpus"]),
                failures=r["failures"],
                moves=r["moves"],
                reason=r["reason"],
                share=t.gpu_share if t else 1.0,
                memory_gb=t.gpu_memory_gb if t else 0.0,
                priority=t.priority if t else 0,
                cpu_only=bool(t and t.gpus == 0),
                start_h=r["start_h"],
                end_h=r["end_h"],
                node=r["node"],
                after=tuple(t.after) if t else (),
                release_h=t.release_h if t else 0.0,
                uses_node=bool(t and (t.cpu_cores > 0 or t.memory_gb > 0 or t.anti_affinity)),
            )
        self.excluded = {
            r["id"]: (r["state"], r["reason"])
            for r in j.exec("SELECT * FROM gpus WHERE state IN ('failed', 'hot')").fetchall()
        }
        if self.resumed:
            with j.tx():
                j.set("state", "running")
                j.set("stop_requested", False)
                j.event("resume", f"executor restarted (pid {os.getpid()}); reconciling attempts")
            self._reconcile()

    def _reconcile(self) -> None:
        """Learn how the attempts of a killed executor ended; adopt the ones still running.

        An attempt recorded `starting` may or may not have been spawned: whoever creates its claim
        file first decides (the wrapper runs it, or this executor cancels it), so it runs at most once.
        """
        j = self.journal
        rows = j.exec(
            f"SELECT * FROM attempts WHERE state IN ({','.join('?' * len(LIVE_ATTEMPT_STATES))})",
            LIVE_ATTEMPT_STATES,
        ).fetchall()
        to_stop: list[Attempt] = []
        for r in rows:
            if r["node"] and r["node"] not in self.sites:  # its node left the cluster meanwhile
                gone = Attempt(
                    id=r["id"], task=r["task"], n=r["n"], gpus=json.loads(r["gpus"]), state=r["state"],
                    dir=Path(r["dir"]), log=Path(r["log"]), node=r["node"],
                )  # fmt: skip
                with j.tx():
                    self._end_attempt(
                        gone, "lost", None, f"node {r['node']} is not in the cluster after a restart"
                    )
                    self._set_task(self.tasks[gone.task], "queued", f"re-queued: node {r['node']} left")
                continue
            node = r["node"] if r["node"] in self.sites else next(iter(self.sites))
            a = Attempt(
                id=r["id"],
                task=r["task"],
                n=r["n"],
                gpus=json.loads(r["gpus"]),
                state=r["state"],
                dir=Path(r["dir"]),
                log=Path(r["log"]),
                pid=r["pid"],
                t_start=r["t_start"],
                node=node,
            )
            task = self.tasks[a.task]
            site = self.sites[node]
            try:
                if site.cancel_if_unclaimed([str(a.dir)])[0]:
                    with j.tx():
                        self._end_attempt(
                            a, "cancelled", None, "never started: cancelled before its wrapper claimed it"
                        )
                        self._set_task(task, "queued", "re-queued after an executor restart")
                    continue
                files = site.files([str(a.dir)])[0]
            except Exception as exc:  # the node is gone: its attempts are lost
                with j.tx():
                    self._end_attempt(a, "lost", None, f"node {node} unreachable after restart: {exc}")
                    task.attempt = None
                    self._set_task(task, "queued", f"re-queued: node {node} unreachable after a restart")
                continue
            claim = files.get("claim") or {}
            if claim.get("cancelled"):
                with j.tx():
                    self._end_attempt(a, "cancelled", None, "cancelled earlier")
                    self._set_task(task, "queued", "re-queued after an executor restart")
                continue
            a.pid = int(claim["pid"]) if "pid" in claim else a.pid
            task.attempt = a
            alive = files.get("exit") is None and bool(a.pid) and site.alive([Probe(str(a.dir), a.pid)])[0]
            if a.state == "stopping":
                if alive:
                    to_stop.append(a)
                    continue
                ex = site.files([str(a.dir)])[0].get("exit")
                with j.tx():
                    self._end_attempt(
                        a, "stopped", None if ex is None else int(ex["rc"]), "stopped (before restart)"
                    )
                    self._set_task(task, "queued", "stopped before an executor restart")
                continue
            if alive:
                with j.tx():
                    if a.state == "starting":
                        self._mark_running(a)
                    j.event("adopt", f"attempt {a.n} still running (pid {a.pid}); adopted", task=a.task)
            # finished ones are reaped by the loop like any other
        if to_stop:
            self._stop_attempts(to_stop, "stop resumed after an executor restart", requeue=True)

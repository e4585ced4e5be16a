"""Attempt processes: launch (journal first, then spawn), wait and reap (exit codes, retries), stop.

Every process goes through a site (`sites`: this machine, or an agent on another node) and the
launcher's wrapper (claim and exit files, process groups); launches, polls and signals are batched,
one request per site.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from gpuplan.executor.launcher import LaunchRequest
from gpuplan.executor.sites import ALIVE_CHECK_S, Outcome, Probe
from gpuplan.executor.state import Attempt, ExecutorBase, TaskState

#: One launch: the task, its new attempt and the request that starts it.
_Launch = tuple[TaskState, Attempt, LaunchRequest]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80]


class LifecycleMixin(ExecutorBase):
    """Launch, poll, reap and stop attempts; a failure uses up a retry, a stop does not."""

    def _site_of(self, task: TaskState) -> str:
        """The site (machine) a task runs on: its GPUs' node; a CPU-only task's planned node."""
        for g in task.gpus:
            d = self.device_of.get(g)
            if d is not None and d.node in self.sites:
                return d.node
        if task.node in self.sites:
            return str(task.node)
        return next(iter(self.sites))

    def _start_many(self, tasks: list[TaskState]) -> None:
        """Launch a batch: record every attempt `starting` in one durable transaction, spawn the
        wrappers (one request per site, every site's begun before any is awaited), then record them
        `running` in one more transaction, committed lazily (no fsync: see `journal`).

        One durable commit per batch rather than two per task keeps the journal's guarantee (an
        attempt is on disk before its process can exist) at a fraction of the fsyncs. The `running`
        records need no fsync: a restarted executor learns the same from the claim files (a
        `starting` attempt whose wrapper claimed it is adopted, with the claim's pid). A batch in
        which a spawn failed is recorded durably, since a failure uses up one of the task's retries.
        """
        if not tasks:
            return
        j = self.journal
        now = time.time()
        batch: list[_Launch] = []
        with j.tx():
            for task in tasks:
                run = self.spec.tasks[task.id]
                n = j.exec("SELECT COUNT(*) FROM attempts WHERE task=?", (task.id,)).fetchone()[0] + 1
                uuids = [self.device_of[g].uuid for g in task.gpus]
                site = self._site_of(task)
                cur = j.exec(
                    "INSERT INTO attempts(task, n, gpus, state, dir, log, t_start, node)"
                    " VALUES(?, ?, ?, 'starting', '', '', ?, ?)",
                    (task.id, n, json.dumps(task.gpus), now, site),
                )
                aid = int(cur.lastrowid or 0)
                root = self.state_dir / "nodes" / _safe(site) if site else self.state_dir
                adir = root / "attempts" / f"{aid}-{uuid.uuid4().hex[:8]}"  # never reused
                log = root / "logs" / f"{_safe(task.id)}.{n}.log"
                j.exec("UPDATE attempts SET dir=?, log=? WHERE id=?", (str(adir), str(log), aid))
                j.db.executemany(
                    "INSERT INTO leases(gpu, task, attempt, state, t_allocated)"
                    " VALUES(?, ?, ?, 'allocated', ?)",
                    [(g, task.id, aid, now) for g in task.gpus],
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
                    node=site,
                    checked=time.monotonic(),
                )
                task.attempt = a
                self._set_task(task, "starting")
                j.event(
                    "start",
                    f"attempt {n} on {', '.join(task.gpus) or 'no GPU'}"
                    + (f" of {site}" if site else "")
                    + f" (CUDA_VISIBLE_DEVICES={','.join(uuids)})",
                    task=task.id,
                )
                env = dict(run.env)
                env["CUDA_VISIBLE_DEVICES"] = ",".join(uuids)
                env["GPUPLAN_TASK_ID"] = task.id
                env["GPUPLAN_ATTEMPT"] = str(n)
                cwd = str(Path(self.cwd, run.cwd)) if run.cwd else self.cwd
                mkdirs = []
                if run.checkpoint_dir:
                    ckpt = str(Path(cwd, run.checkpoint_dir))
                    env["GPUPLAN_CHECKPOINT_DIR"] = ckpt
                    mkdirs.append(ckpt)
                batch.append((task, a, LaunchRequest(str(adir), str(log), list(run.argv), env, cwd, mkdirs)))
        by_site: dict[str, list[_Launch]] = {}
        for item in batch:
            by_site.setdefault(item[1].node, []).append(item)
        # per site: its items, and the function collecting its answer (or why the request failed)
        begun: list[tuple[list[_Launch], Callable[[], list[int | str]] | str]] = []
        for site, items in by_site.items():
            try:
                begun.append((items, self.sites[site].spawn([r for _, _, r in items])))
            except Exception as exc:  # the site is unreachable: nothing started there (claims decide)
                begun.append((items, f"{type(exc).__name__}: {exc}"))
        spawned: list[tuple[TaskState, Attempt, int | str]] = []
        for items, collect in begun:
            try:
                pids = [collect] * len(items) if isinstance(collect, str) else collect()
            except Exception as exc:  # no answer: whether its wrappers started, the claims decide
                pids = [f"{type(exc).__name__}: {exc}"] * len(items)
            spawned.extend((t, a, pid) for (t, a, _), pid in zip(items, pids, strict=True))
        failed = [(t, a, str(pid)) for t, a, pid in spawned if isinstance(pid, str)]
        taken: dict[int, int] = {}
        unknown: set[int] = set()
        for site in {a.node for _, a, _ in failed}:
            mine = [(t, a, e) for t, a, e in failed if a.node == site]
            try:
                cancelled = self.sites[site].cancel_if_unclaimed([str(a.dir) for _, a, _ in mine])
                files = self.sites[site].files([str(a.dir) for _, a, _ in mine])
            except Exception:  # unreachable: whether they run is unknown; left `starting`, the node's
                unknown.update(a.id for _, a, _ in mine)  # fault (its GPUs fail) or a restart settles them
                continue
            for (_, a, _), gone, f in zip(mine, cancelled, files, strict=True):
                claim = f.get("claim") or {}
                if not gone and "pid" in claim:
                    taken[a.id] = int(claim["pid"])  # the wrapper won the claim: it runs
        with j.tx(durable=bool(failed)):
            for task, a, pid in spawned:
                if a.id in unknown:
                    continue
                if isinstance(pid, str) and a.id not in taken:
                    if a.state == "starting" and task.attempt is a:
                        self._end_attempt(a, "failed", None, f"cannot spawn: {pid}")
                        self._after_failure(task, f"cannot spawn: {pid}")
                    continue
                a.pid = taken.get(a.id, pid if isinstance(pid, int) else None)
                self._mark_running(a)

    # finishing tasks ------------------------------------------------------------------------------
    def _poll(
        self, attempts: list[Attempt], *, check_alive: bool = False, lost_ended: bool = False
    ) -> dict[int, Outcome]:
        """(ended, exit code) per attempt id, one request per site; the exit code is None when the
        wrapper vanished without one. Wrappers are checked for life about once a second (or always
        with `check_alive`). An attempt on a lost site counts as ended without a code with
        `lost_ended` (stopping it), else it is left out (its node's fault will stop it). Both ask
        every site for a fresh look (a stop waits on it); a plain poll may be answered from the ends
        a node agent reported (`Site.poll`)."""
        now = time.monotonic()
        by_site: dict[str, list[Attempt]] = {}
        for a in attempts:
            by_site.setdefault(self._site_key(a), []).append(a)
        pending: list[tuple[list[Attempt], Callable[[], list[Outcome]] | None]] = []
        for site, mine in by_site.items():
            probes = []
            for a in mine:
                check = check_alive or now - a.checked >= ALIVE_CHECK_S
                if check:
                    a.checked = now
                probes.append(Probe(str(a.dir), a.pid, check))
            try:
                fresh = check_alive or lost_ended
                pending.append(
                    (mine, None if self.sites[site].lost else self.sites[site].poll(probes, fresh))
                )
            except Exception:
                pending.append((mine, None))
        out: dict[int, Outcome] = {}
        for mine, collect in pending:
            try:
                results = collect() if collect is not None else None
            except Exception:
                results = None
            if results is None:  # the site is lost: its attempts ended, how is unknown
                if lost_ended:
                    out.update({a.id: (True, None) for a in mine})
            else:
                out.update({a.id: r for a, r in zip(mine, results, strict=True)})
        return out

    def _reap(self) -> None:
        live = [
            t.attempt
            for t in self.tasks.values()
            if t.attempt is not None
            and t.attempt.state in ("running", "starting")
            and not (t.attempt.state == "starting" and t.attempt.pid is None)
            and not self._site_lost(t.attempt)  # a lost node's attempts are ended by its fault
        ]
        if not live:
            return
        ended = {aid: rc for aid, (done, rc) in self._poll(live).items() if done}
        if not ended:
            return
        with self.journal.tx():
            for a in live:
                if a.id not in ended:
                    continue
                task = self.tasks[a.task]
                rc = ended[a.id]
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

    def _site_key(self, a: Attempt) -> str:
        """The site an attempt runs on (the first one for attempts journaled before sites)."""
        return a.node if a.node in self.sites else next(iter(self.sites))

    def _site_lost(self, a: Attempt) -> bool:
        site = self.sites.get(a.node)
        return bool(site is not None and site.lost)

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
        first = self._poll(attempts, lost_ended=True)
        with j.tx():
            for a in attempts:
                ended, rc0 = first[a.id]
                if ended and rc0 is not None:
                    done_before[a.id] = rc0
                    continue
                a.state = "stopping"
                j.exec("UPDATE attempts SET state='stopping' WHERE id=?", (a.id,))
                self._set_task(self.tasks[a.task], "stopping", reason)
                j.event("stop", f"SIGTERM attempt {a.n}: {reason}", task=a.task)
                pending.append(a)
        rcs: dict[int, int | None] = {}
        alive = self._still_running(pending, rcs)
        self._signal(alive, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(0.01)
            alive = self._still_running(alive, rcs)
        killed = {a.id for a in alive}
        self._signal(alive, signal.SIGKILL)
        kill_deadline = time.monotonic() + 5.0
        while alive and time.monotonic() < kill_deadline:
            time.sleep(0.01)
            alive = self._still_running(alive, rcs)
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
                rc = rcs.get(a.id)
                how = "SIGKILL after the grace period" if a.id in killed or rc is None else f"exit code {rc}"
                self._end_attempt(a, "stopped", rc, f"{reason} ({how})", lease="failed" if fault else None)
                task.attempt = None
                self._set_task(task, "queued" if requeue else "stopped", f"stopped: {reason}")

    def _still_running(self, attempts: list[Attempt], rcs: dict[int, int | None]) -> list[Attempt]:
        """The attempts not yet ended (checking their wrappers); the ended ones' codes go to `rcs`."""
        if not attempts:
            return []
        polled = self._poll(attempts, check_alive=True, lost_ended=True)
        for a in attempts:
            if polled[a.id][0]:
                rcs[a.id] = polled[a.id][1]
        return [a for a in attempts if not polled[a.id][0]]

    def _signal(self, attempts: list[Attempt], sig: int) -> None:
        """`sig` to each attempt's process group, one request per site (lost sites are skipped)."""
        by_site: dict[str, list[int]] = {}
        for a in attempts:
            if a.pid:
                by_site.setdefault(self._site_key(a), []).append(a.pid)
        for site, pids in by_site.items():
            with contextlib.suppress(Exception):
                if not self.sites[site].lost:
                    self.sites[site].signal(pids, sig)

"""GPU health: read the devices, log metrics, and act on faults (unhealthy, ECC, fatal XID) and heat.

A faulty GPU is excluded, its tasks are stopped and the unfinished work is re-planned; an overheated
GPU is used again once it has cooled COOL_MARGIN_C under the limit.
"""

from __future__ import annotations

import json
import time

from gpuplan.executor.devices import Reading
from gpuplan.executor.state import ExecutorBase

#: XID codes that mean the GPU itself is unusable (double-bit ECC, fallen off the bus, row-remap
#: failure, NVLink, uncontained ECC, GSP errors); other XIDs (application faults) are logged only.
FATAL_XIDS = frozenset({48, 62, 63, 64, 74, 79, 92, 94, 95, 119, 120})
#: An overheated GPU is used again once it is this many degrees under the limit.
COOL_MARGIN_C = 5.0


class HealthMixin(ExecutorBase):
    """Sample the GPUs, judge each reading, exclude faulty GPUs and move their tasks."""

    def _sample(self) -> None:
        """Read every GPU, append to metrics.jsonl, and act on faults and heat. A cluster backend may
        give several readings of a GPU at once (those its nodes took since the last sample, in
        order): they are judged as the samples they were, one after another."""
        try:
            readings = self.backend.read()
        except Exception as exc:  # a backend that cannot read at all: log, keep running tasks
            with self.journal.tx():
                self.journal.event("monitor", f"device read failed: {type(exc).__name__}: {exc}")
            return
        sample: list[Reading] = []
        seen: set[str] = set()
        for r in readings:
            if r.gpu in seen:  # a later sample of this GPU: judge the earlier ones first
                self._judge_sample(sample)
                sample, seen = [], set()
            sample.append(r)
            seen.add(r.gpu)
        self._judge_sample(sample)

    def _judge_sample(self, readings: list[Reading]) -> None:
        """Log one sample (at most one reading per GPU) and act on its faults and heat."""
        on: dict[str, list[str]] = {}
        for t in self.tasks.values():
            if t.attempt is not None:
                for g in t.attempt.gpus:
                    on.setdefault(g, []).append(t.id)
        faults: list[tuple[str, str, str]] = []
        recovered: list[tuple[str, str]] = []
        limit = self.problem.temperature_limit_c
        for r in readings:
            gid = self.gpu_of_device.get(r.gpu)
            if gid is None:
                continue
            line = r.to_dict()
            line["gpu"], line["device"], line["tasks"] = gid, r.gpu, on.get(gid, [])
            self._metrics_fh.write(json.dumps(line) + "\n")
            faults.extend(self._judge(gid, r, limit, recovered))
        self._metrics_fh.flush()
        if recovered:
            with self.journal.tx():
                for gid, why in recovered:
                    self.excluded.pop(gid, None)
                    self.journal.exec("DELETE FROM gpus WHERE id=?", (gid,))
                    self.journal.event("recover", why, gpu=gid)
            if self._waiting():
                self._replan_needed = True
        if faults:
            self._handle_faults(faults)

    def _judge(
        self, gid: str, r: Reading, limit: float | None, recovered: list[tuple[str, str]]
    ) -> list[tuple[str, str, str]]:
        """(gpu, kind, reason) for each new fault in this reading; cooled GPUs go to `recovered`."""
        state = self.excluded.get(gid, ("", ""))[0]
        if state == "failed":
            return []
        if not r.healthy:
            return [(gid, "failed", r.error or "unhealthy")]
        if r.ecc_errors is not None:
            base = self._ecc_base.setdefault(gid, r.ecc_errors)
            if r.ecc_errors > base:
                return [(gid, "failed", f"uncorrected ECC errors rose from {base} to {r.ecc_errors}")]
        fatal = [x for x in r.xids if x in FATAL_XIDS]
        if fatal:
            return [(gid, "failed", f"XID {fatal[0]} (GPU error)")]
        for x in r.xids:
            with self.journal.tx():
                self.journal.event("xid", f"XID {x} reported (not a GPU fault; logged only)", gpu=gid)
        if limit is not None and r.temperature_c is not None:
            if state != "hot" and r.temperature_c > limit:
                return [(gid, "hot", f"{r.temperature_c:g} °C is over the limit of {limit:g} °C")]
            if state == "hot" and r.temperature_c <= limit - COOL_MARGIN_C:
                recovered.append((gid, f"cooled to {r.temperature_c:g} °C (limit {limit:g} °C)"))
        return []

    def _handle_faults(self, faults: list[tuple[str, str, str]]) -> None:
        """Exclude the GPUs, stop their tasks, re-plan the unfinished work, restart the moved tasks."""
        j = self.journal
        bad = {g for g, _, _ in faults}
        with j.tx():
            for gid, kind, why in faults:
                self.excluded[gid] = (kind, why)
                j.exec(
                    "INSERT INTO gpus(id, state, reason, t) VALUES(?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                    "state=excluded.state, reason=excluded.reason, t=excluded.t",
                    (gid, kind, why, time.time()),
                )
                j.event("fault", f"{'failed' if kind == 'failed' else 'overheated'}: {why}", gpu=gid)
        lost = {name for name, site in self.sites.items() if site.lost}  # a lost node: its CPU-only tasks too
        victims = [
            t.attempt
            for t in self.tasks.values()
            if t.attempt is not None and (bad & set(t.attempt.gpus) or t.attempt.node in lost)
        ]
        for a in victims:
            self.tasks[a.task].moves += 1
        if victims:
            what = ", ".join(f"GPU {g} {'failed' if k == 'failed' else 'overheated'}" for g, k, _ in faults)
            self._stop_attempts(victims, what, requeue=True, fault=True)
        self._replan(f"GPU {', '.join(sorted(bad))} excluded")

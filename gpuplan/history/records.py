"""One record per attempt the executor ran: what a calibration and a report need, in hours.

Times are hours from the run's start (the journal's `epoch`), converted with the run's
`--hour-seconds` (`hour_s`), so a time-compressed simulated run reads in planned hours. An attempt's
actual start is when its process was spawned (`t_running`), its end when the executor saw it end.

- `declared_h`: the task's duration on the attempt's GPU type as the problem declares it
  (`duration_h[type]`, else `work_h / speed`), without data transfer: what a calibration compares
  the measured duration with;
- `planned_*`: the plan's start, end and duration for the task (the latest re-plan's times, as the
  journal keeps them); None for a plan without times;
- `resumed`: an earlier attempt of the task ran and the task has a checkpoint directory, so this one
  may have resumed part-way (its duration is not the whole task's).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gpuplan.history.journal import RunJournal, read_journal
from gpuplan.history.metrics import attempt_readings, load_metrics


@dataclass
class AttemptRecord:
    """One attempt, as measured (see the module docstring for each time's meaning)."""

    run: str
    task: str
    group: str | None
    attempt: int
    gpu_type: str | None
    gpus: str
    node: str | None
    state: str
    exit_code: int | None
    reason: str
    resumed: bool
    declared_h: float | None
    planned_start_h: float | None
    planned_end_h: float | None
    planned_duration_h: float | None
    start_h: float | None
    end_h: float | None
    duration_h: float | None
    cost: float | None
    energy_j: float | None = None
    utilization_mean: float | None = None
    utilization_peak: float | None = None
    memory_peak_gb: float | None = None
    temperature_peak_c: float | None = None
    samples: int = 0


COLUMNS = tuple(f.name for f in fields(AttemptRecord))


def _gpu_index(problem: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """GPU id -> (type, node) for the GPUs of a problem as JSON (counted GPUs: '<node>/<type>/<k>')."""
    out: dict[str, tuple[str, str]] = {}
    for node in problem.get("nodes", []):
        for g in node.get("gpus", []):
            out[g["id"]] = (g["type"], node["id"])
        for t, count in node.get("gpu_counts", {}).items():
            for k in range(count):
                out[f"{node['id']}/{t}/{k}"] = (t, node["id"])
    return out


def _declared(task: dict[str, Any], gpu_type: str | None, speeds: dict[str, float]) -> float | None:
    """The task's declared hours on `gpu_type` (explicit duration, else work / speed)."""
    if gpu_type is None:
        return task.get("work_h")
    explicit = task.get("duration_h") or {}
    if gpu_type in explicit:
        return float(explicit[gpu_type])
    work = task.get("work_h")
    speed = speeds.get(gpu_type)
    return None if work is None or not speed else float(work) / speed


def run_records(run: RunJournal, *, metrics: bool = True) -> list[AttemptRecord]:
    """Every attempt of one run, oldest first; with `metrics`, joined with its GPU samples."""
    problem = run.meta.get("problem") or {}
    plan = run.meta.get("plan") or {}
    spec = run.meta.get("spec") or {}
    tasks = {t["id"]: t for t in problem.get("tasks", [])}
    types = {gt["name"]: gt for gt in problem.get("gpu_types", [])}
    speeds = {name: float(gt.get("speed", 1.0)) for name, gt in types.items()}
    gpu_at = _gpu_index(problem)
    planned = {a["task"]: a for a in plan.get("assignments", [])}
    journaled = {t["id"]: t for t in run.tasks}
    checkpointed = {tid for tid, r in (spec.get("tasks") or {}).items() if r.get("checkpoint_dir")}
    samples = load_metrics(run.state_dir / "metrics.jsonl") if metrics else {}
    epoch, hour_s = run.epoch, run.hour_s
    name = str(run.state_dir)
    ran_before: set[str] = set()
    out: list[AttemptRecord] = []
    parsed: dict[str, list[str]] = {}  # GPU lists repeat: parse each spelling once
    for aid, tid, n, gpus_json, state, _t_start, t_run, t_end, rc, reason in run.attempts:
        del aid
        gpus = parsed.get(gpus_json)
        if gpus is None:
            gpus = parsed[gpus_json] = json.loads(gpus_json)
        task = tasks.get(tid, {})
        where = [gpu_at.get(g) for g in gpus]
        gpu_type = where[0][0] if where and where[0] else None
        node = where[0][1] if where and where[0] else None
        jt = journaled.get(tid, {})
        pa = planned.get(tid, {})
        p_start = jt.get("start_h", pa.get("start_h"))
        p_end = jt.get("end_h", pa.get("end_h"))
        start = None if t_run is None else (t_run - epoch) / hour_s
        end = None if t_end is None else (t_end - epoch) / hour_s
        dur = None if start is None or end is None else max(0.0, end - start)
        price = float(types.get(gpu_type or "", {}).get("cost_per_hour", 0.0))
        share = float(task.get("gpu_share", 1.0))
        rec = AttemptRecord(
            run=name,
            task=tid,
            group=task.get("group"),
            attempt=int(n),
            gpu_type=gpu_type,
            gpus=",".join(gpus),
            node=node,
            state=state,
            exit_code=rc,
            reason=reason,
            resumed=tid in ran_before and tid in checkpointed,
            declared_h=_declared(task, gpu_type, speeds) if task else None,
            planned_start_h=p_start,
            planned_end_h=p_end,
            planned_duration_h=pa.get("duration_h"),
            start_h=start,
            end_h=end,
            duration_h=dur,
            cost=None if dur is None else dur * share * price * len(gpus),
        )
        if metrics and t_run is not None and t_end is not None:
            r = attempt_readings(samples, gpus, t_run, t_end)
            rec.energy_j, rec.utilization_mean, rec.utilization_peak = (
                r.energy_j,
                r.utilization_mean,
                r.utilization_peak,
            )
            rec.memory_peak_gb, rec.temperature_peak_c, rec.samples = (
                r.memory_peak_gb,
                r.temperature_peak_c,
                r.samples,
            )
        if t_run is not None:
            ran_before.add(tid)
        out.append(rec)
    return out


def load_history(state_dirs: list[Path], *, metrics: bool = True) -> list[AttemptRecord]:
    """The attempts of every run in `state_dirs`, run by run."""
    out: list[AttemptRecord] = []
    for d in state_dirs:
        out.extend(run_records(read_journal(d, events=False), metrics=metrics))
    return out


def to_csv(records: list[AttemptRecord]) -> str:
    """The records as CSV, one header line (COLUMNS) and one line per attempt; empty cells for None."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in records:
        w.writerow(["" if v is None else v for v in asdict(r).values()])
    return buf.getvalue()


def to_json(records: list[AttemptRecord]) -> list[dict[str, Any]]:
    """The records as JSON objects (None stays null)."""
    return [asdict(r) for r in records]


__all__ = ["COLUMNS", "AttemptRecord", "load_history", "run_records", "to_csv", "to_json"]

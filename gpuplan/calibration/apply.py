"""Problem x Calibration -> Problem: plan with measured values where the evidence suffices.

For each task and GPU type, the duration the plan uses is, first that applies:

1. the group's fitted duration on that type (`DurationFit`, at least `min_observations`), set as
   `duration_h[type]` (not for tasks with `input_gb`: a measured duration already holds the transfer
   time of the node it ran on, and the compiler would add it again);
2. the declared duration scaled by the type's fitted factor (`SpeedFit`, at least
   `min_observations`): the type's `speed` becomes declared speed x factor (tasks with `work_h`), and
   an explicit `duration_h[type]` becomes duration / factor;
3. the declared duration.

A pure function: the input problem is not changed; the returned `CalibrationUse` lists each value's
source for the plan's `calibration` field.
"""

from __future__ import annotations

from gpuplan.calibration.model import Calibration
from gpuplan.errors import InputError
from gpuplan.models import CalibrationUse, Problem, ValueSource

DEFAULT_MIN_OBSERVATIONS = 3


def _speed_sources(
    problem: Problem, cal: Calibration, min_obs: int, uses: dict[str, int]
) -> list[ValueSource]:
    """A ValueSource per GPU type of the problem: its fitted speed when the evidence suffices."""
    out: list[ValueSource] = []
    for gt in problem.gpu_types:
        f = cal.speed(gt.name)
        n = 0 if f is None else f.observations
        if f is not None and n >= min_obs:
            value, source = gt.speed * f.factor, "calibration"
            note = f"factor {f.factor:.3g} (95%: {f.low:.3g}-{f.high:.3g}), spread {f.log_sigma:.2g} in ln"
        else:
            value, source = gt.speed, "declared"
            note = "no observations" if n == 0 else f"{n} observation(s), fewer than {min_obs}"
        out.append(
            ValueSource(
                gpu_type=gt.name,
                quantity="speed",
                value=value,
                declared=gt.speed,
                source=source,
                observations=n,
                tasks=uses.get(gt.name, 0),
                note=note,
            )
        )
    return out


def apply_calibration(
    problem: Problem,
    cal: Calibration,
    *,
    min_observations: int = DEFAULT_MIN_OBSERVATIONS,
    file: str | None = None,
) -> tuple[Problem, CalibrationUse]:
    """The problem with calibrated speeds and durations, and where each value came from."""
    if min_observations < 1:
        raise InputError("--min-observations", f"must be >= 1 (got {min_observations})")
    type_names = {gt.name for gt in problem.gpu_types}
    factors = {
        s.gpu_type: s.factor
        for s in cal.speeds
        if s.gpu_type in type_names and s.observations >= min_observations
    }
    speed_uses: dict[str, int] = {}  # tasks whose duration on the type follows its speed
    groups = {t.group for t in problem.tasks if t.group is not None}
    fitted = {
        (d.group, d.gpu_type): d
        for d in cal.durations
        if d.group in groups and d.gpu_type in type_names and d.observations >= min_observations
    }
    used_by: dict[tuple[str, str], int] = {}
    tasks = []
    calibrated = 0
    for t in problem.tasks:
        if t.gpus == 0:
            tasks.append(t)
            continue
        explicit = dict(t.duration_h or {})
        changed = dict(explicit)
        touched = False
        for name in sorted(type_names):
            d = fitted.get((t.group, name)) if t.group is not None and t.input_gb == 0 else None
            if d is not None:
                changed[name] = d.duration_h
                used_by[(d.group, name)] = used_by.get((d.group, name), 0) + 1
                touched = True
            elif name in explicit or t.work_h is not None:
                speed_uses[name] = speed_uses.get(name, 0) + 1
                if name in factors:
                    if name in explicit:
                        changed[name] = explicit[name] / factors[name]
                    touched = True
        calibrated += touched
        tasks.append(t.model_copy(update={"duration_h": changed or None}) if changed != explicit else t)
    sources = _speed_sources(problem, cal, min_observations, speed_uses)
    for d in cal.durations:
        if d.group not in groups or d.gpu_type not in type_names:
            continue
        ok = d.observations >= min_observations
        sources.append(
            ValueSource(
                gpu_type=d.gpu_type,
                group=d.group,
                quantity="duration_h",
                value=d.duration_h,
                declared=None,
                source="calibration" if ok else "declared",
                observations=d.observations,
                tasks=used_by.get((d.group, d.gpu_type), 0),
                note=(
                    f"95%: {d.low_h:.3g}-{d.high_h:.3g} h, spread {d.log_sigma:.2g} in ln"
                    if ok
                    else f"{d.observations} observation(s), fewer than {min_observations}: not used"
                ),
            )
        )
    gpu_types = [
        gt.model_copy(update={"speed": gt.speed * factors[gt.name]}) if gt.name in factors else gt
        for gt in problem.gpu_types
    ]
    out = problem.model_copy(update={"gpu_types": gpu_types, "tasks": tasks})
    use = CalibrationUse(
        file=file,
        min_observations=min_observations,
        values=sources,
        tasks_calibrated=calibrated,
        tasks_declared=len(problem.tasks) - calibrated,
    )
    return out, use


__all__ = ["DEFAULT_MIN_OBSERVATIONS", "apply_calibration"]

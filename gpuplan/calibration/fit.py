r"""The robust fit: medians in log space, spreads from the median absolute deviation.

For the successful, whole attempts i (declared hours δ_i on their GPU type, measured hours d_i):

    r_i = ln(d_i / δ_i)                       per GPU type T:  m_T = median_{i ∈ T} r_i
    factor_T = exp(-m_T)                      (measured speed = declared speed x factor_T)
    σ_T = 1.4826 · median_{i ∈ T} |r_i - m_T|           (MAD, consistent with σ for normal r)
    se_T = 1.2533 · σ_T / √n_T                          (standard error of a median)
    interval: exp(-(m_T ± 1.96 se_T))

and per (group g, type T), the same on ℓ_i = ln d_i: duration_{g,T} = exp(median ℓ_i), with its σ,
se and interval. A median moves at most to a neighbouring order statistic when one observation is
added, so one outlier cannot swing a fit of three or more observations outside the range of the
others. Attempts that failed, were stopped (moved off a failing GPU, or by `gpuplan stop`), were lost,
never ran, or resumed from a checkpoint are left out (counted in `excluded`): their durations are not
a whole task's run. (A stopped attempt says the task needs *at least* that long; that censoring is not
used.)
"""

from __future__ import annotations

import math

import numpy as np

from gpuplan.calibration.model import Calibration, DurationFit, SpeedFit
from gpuplan.history.records import AttemptRecord

MAD_TO_SIGMA = 1.4826
MEDIAN_SE = 1.2533
Z95 = 1.96


def grouped_median_mad(
    keys: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key (ascending): (key, count, median of x, median absolute deviation of x).

    Two sorts of all values, no Python loop over groups."""
    if keys.size == 0:
        empty = np.zeros(0)
        return keys[:0], np.zeros(0, dtype=np.int64), empty, empty
    order = np.lexsort((x, keys))
    k, xs = keys[order], x[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    counts = np.diff(np.r_[starts, k.size])
    lo, hi = starts + (counts - 1) // 2, starts + counts // 2
    med = (xs[lo] + xs[hi]) / 2
    dev = np.abs(xs - np.repeat(med, counts))
    ds = dev[np.lexsort((dev, k))]
    mad = (ds[lo] + ds[hi]) / 2
    return k[starts], counts, med, mad


def _spread(mad: float, n: int) -> tuple[float, float]:
    sigma = MAD_TO_SIGMA * mad
    return sigma, MEDIAN_SE * sigma / math.sqrt(n)


def _exclusion(r: AttemptRecord) -> str | None:
    """Why an attempt enters no fit, or None when it is usable."""
    if r.state != "succeeded":
        return {
            "failed": "failed",
            "stopped": "stopped or moved",
            "lost": "lost",
            "cancelled": "never ran",
        }.get(r.state, "unfinished")
    if r.resumed:
        return "resumed from a checkpoint"
    if r.gpu_type is None:
        return "no GPU (CPU-only task)"
    if r.duration_h is None or r.duration_h <= 0:
        return "no measured duration"
    return None


def fit(records: list[AttemptRecord], runs: list[str] | None = None) -> Calibration:
    """Fit per-type speed factors and per (group, type) durations from attempt records."""
    excluded: dict[str, int] = {}
    used: list[AttemptRecord] = []
    for r in records:
        why = _exclusion(r)
        if why is None:
            used.append(r)
        else:
            excluded[why] = excluded.get(why, 0) + 1
    types = sorted({r.gpu_type for r in used if r.gpu_type is not None})
    type_code = {t: k for k, t in enumerate(types)}
    groups = sorted({r.group for r in used if r.group is not None})
    group_code = {g: k for k, g in enumerate(groups)}
    tcode = np.array([type_code[r.gpu_type] for r in used], dtype=np.int64)  # type: ignore[index]
    dur = np.array([r.duration_h for r in used], dtype=float)
    decl = np.array([r.declared_h if r.declared_h else np.nan for r in used], dtype=float)
    gcode = np.array([-1 if r.group is None else group_code[r.group] for r in used], dtype=np.int64)

    speeds: list[SpeedFit] = []
    ok = ~np.isnan(decl)
    if (~ok).any():
        excluded["no declared duration (speed fit only)"] = int((~ok).sum())
    keys, counts, med, mad = grouped_median_mad(tcode[ok], np.log(dur[ok] / decl[ok]))
    named = ok & (gcode >= 0)
    n_groups = {int(t): int(np.unique(gcode[named & (tcode == t)]).size) for t in keys}  # few types
    for t, n, m, d in zip(keys, counts, med, mad, strict=True):
        sigma, se = _spread(float(d), int(n))
        speeds.append(
            SpeedFit(
                gpu_type=types[int(t)],
                factor=math.exp(-m),
                log_sigma=sigma,
                log_se=se,
                low=math.exp(-(m + Z95 * se)),
                high=math.exp(-(m - Z95 * se)),
                observations=int(n),
                groups=n_groups[int(t)],
            )
        )

    durations: list[DurationFit] = []
    has = gcode >= 0
    width = max(1, len(types))
    keys, counts, med, mad = grouped_median_mad(gcode[has] * width + tcode[has], np.log(dur[has]))
    for key, n, m, d in zip(keys, counts, med, mad, strict=True):
        sigma, se = _spread(float(d), int(n))
        durations.append(
            DurationFit(
                group=groups[int(key) // width],
                gpu_type=types[int(key) % width],
                duration_h=math.exp(m),
                log_sigma=sigma,
                log_se=se,
                low_h=math.exp(m - Z95 * se),
                high_h=math.exp(m + Z95 * se),
                observations=int(n),
            )
        )
    return Calibration(
        runs=list(runs or sorted({r.run for r in records})),
        attempts=len(records),
        used=len(used),
        excluded=dict(sorted(excluded.items())),
        speeds=speeds,
        durations=durations,
    )


__all__ = ["MAD_TO_SIGMA", "MEDIAN_SE", "fit", "grouped_median_mad"]

"""GPU samples (`metrics.jsonl`) integrated over an attempt's running interval.

Each GPU's samples (t_k, y_k) are read as the piecewise-linear function ŷ(t) through them, held
constant before the first and after the last sample. For an attempt running on GPUs G over [a, b]:

    energy_j        = Σ_{g ∈ G} ∫_a^b q̂_g(t) dt,   q_k = power_k / max(1, n_k)   (trapezoid rule)
    utilization     = (1 / |G|) Σ_{g ∈ G} (1 / (b - a)) ∫_a^b û_g(t) dt          (time-weighted mean)
    peak_*          = max over the samples inside [a, b] and ŷ(a), ŷ(b)

where n_k is the number of tasks the sample lists on the GPU: a shared GPU's power is split evenly
between the tasks on it. Sampling limits accuracy: the executor samples every `--sample-interval`
seconds (default 1), so a change of power between two samples is seen as a straight line, a spike
shorter than the interval may be missed by the peaks, and an attempt shorter than the interval is
integrated from the samples around it (`samples` says how many fell inside it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpuplan.errors import InputError

FIELDS = ("power", "utilization", "memory_used_gb", "temperature_c")


@dataclass
class GpuSeries:
    """One GPU's samples, field by field (time, value), each sorted by time, absent values dropped."""

    t: np.ndarray
    series: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class Readings:
    """What the samples say about one attempt (None where no GPU of it has samples of that field)."""

    energy_j: float | None
    utilization_mean: float | None
    utilization_peak: float | None
    memory_peak_gb: float | None
    temperature_peak_c: float | None
    samples: int


def load_metrics(path: Path) -> dict[str, GpuSeries]:
    """Per GPU id, its samples from a metrics.jsonl file ({} when the file is missing)."""
    if not path.is_file():
        return {}
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {}
    nan = math.nan
    with open(path, encoding="utf-8") as fh:
        for k, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                s = json.loads(line)
                gpu, t = str(s["gpu"]), float(s["t"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise InputError(f"{path}:{k}", "not a GPU sample (needs 'gpu' and 't')") from None
            power = s.get("power_w")
            n = max(1, len(s.get("tasks") or ()))
            rows.setdefault(gpu, []).append(
                (
                    t,
                    nan if power is None else float(power) / n,
                    nan if s.get("utilization") is None else float(s["utilization"]),
                    nan if s.get("memory_used_gb") is None else float(s["memory_used_gb"]),
                    nan if s.get("temperature_c") is None else float(s["temperature_c"]),
                )
            )
    out: dict[str, GpuSeries] = {}
    for gpu, r in rows.items():
        a = np.array(r, dtype=float)
        a = a[np.argsort(a[:, 0], kind="stable")]
        series = {}
        for col, name in enumerate(FIELDS, 1):
            ok = ~np.isnan(a[:, col])
            series[name] = (a[ok, 0], a[ok, col])
        out[gpu] = GpuSeries(t=a[:, 0], series=series)
    return out


def _window(t: np.ndarray, y: np.ndarray, a: float, b: float) -> tuple[float, float] | None:
    """(∫_a^b ŷ dt, max of ŷ on [a, b]) for the interpolated samples (t, y); None without samples."""
    if t.size == 0:
        return None
    i, j = np.searchsorted(t, a, "right"), np.searchsorted(t, b, "left")
    xs = np.concatenate(([a], t[i:j], [b]))
    ys = np.interp(xs, t, y)
    return float(np.trapezoid(ys, xs)), float(ys.max())


def attempt_readings(metrics: dict[str, GpuSeries], gpus: list[str], a: float, b: float) -> Readings:
    """Energy, utilization and peaks of the attempt that ran on `gpus` over wall times [a, b]."""
    energy: list[float] = []
    util: list[float] = []
    peaks: dict[str, list[float]] = {name: [] for name in FIELDS}
    samples = 0
    span = max(b - a, 1e-9)
    for g in gpus:
        s = metrics.get(g)
        if s is None:
            continue
        samples += int(np.searchsorted(s.t, b, "right") - np.searchsorted(s.t, a, "left"))
        for name in FIELDS:
            w = _window(*s.series[name], a, b)
            if w is None:
                continue
            peaks[name].append(w[1])
            if name == "power":
                energy.append(w[0])
            elif name == "utilization":
                util.append(w[0] / span)
    return Readings(
        energy_j=sum(energy) if energy else None,
        utilization_mean=sum(util) / len(util) if util else None,
        utilization_peak=max(peaks["utilization"], default=None),
        memory_peak_gb=max(peaks["memory_used_gb"], default=None),
        temperature_peak_c=max(peaks["temperature_c"], default=None),
        samples=samples,
    )


__all__ = ["GpuSeries", "Readings", "attempt_readings", "load_metrics"]

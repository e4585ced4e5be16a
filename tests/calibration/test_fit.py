"""The robust fit: grouped medians against numpy, outliers, exclusions, and recovered factors."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuplan.calibration import fit, grouped_median_mad
from gpuplan.history import AttemptRecord


def rec(duration_h: float, declared_h: float | None = 1.0, **kw: Any) -> AttemptRecord:
    """A successful attempt with the given measured and declared hours."""
    base: dict[str, Any] = dict(
        run="r",
        task="t",
        group="g",
        attempt=1,
        gpu_type="A",
        gpus="a0",
        node="n0",
        state="succeeded",
        exit_code=0,
        reason="",
        resumed=False,
        declared_h=declared_h,
        planned_start_h=None,
        planned_end_h=None,
        planned_duration_h=None,
        start_h=0.0,
        end_h=duration_h,
        duration_h=duration_h,
        cost=None,
    )
    base.update(kw)
    return AttemptRecord(**base)


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=60,
    )
)
def test_grouped_median_and_mad_match_numpy(pairs: list[tuple[int, float]]) -> None:
    """Per key, the vectorized median and MAD equal numpy's on that key's values."""
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    x = np.array([v for _, v in pairs])
    ks, counts, med, mad = grouped_median_mad(keys, x)
    for k, n, m, d in zip(ks, counts, med, mad, strict=True):
        vals = x[keys == k]
        assert n == vals.size
        assert m == pytest.approx(np.median(vals), abs=1e-9)
        assert d == pytest.approx(np.median(np.abs(vals - np.median(vals))), abs=1e-9)


@settings(max_examples=60)
@given(
    st.lists(st.floats(0.5, 2.0), min_size=3, max_size=15),
    st.floats(1e-4, 1e4),
)
def test_one_outlier_cannot_swing_a_fit(clean: list[float], outlier: float) -> None:
    """With at least 3 observations, one arbitrary extra one keeps the fitted duration within the
    range of the others, and the speed factor within the range of their ratios."""
    cal = fit([rec(d) for d in clean] + [rec(outlier)])
    (d,) = cal.durations
    assert min(clean) - 1e-9 <= d.duration_h <= max(clean) + 1e-9
    (s,) = cal.speeds
    assert 1 / max(clean) - 1e-9 <= s.factor <= 1 / min(clean) + 1e-9


@settings(max_examples=40)
@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=12), st.floats(0.01, 100.0))
def test_durations_scale_with_the_data(hours: list[float], c: float) -> None:
    """Multiplying every measured duration by c multiplies the fitted duration by c and the speed
    factor by 1/c; the spreads do not change."""
    a = fit([rec(h) for h in hours])
    b = fit([rec(h * c) for h in hours])
    assert b.durations[0].duration_h == pytest.approx(a.durations[0].duration_h * c, rel=1e-9)
    assert b.speeds[0].factor == pytest.approx(a.speeds[0].factor / c, rel=1e-9)
    assert b.durations[0].log_sigma == pytest.approx(a.durations[0].log_sigma, abs=1e-9)


def test_recovers_true_speed_factors_from_noisy_runs() -> None:
    """Type A runs 30% slow and B 20% fast with 5% noise and a wild outlier: factors come back within
    their intervals, and the intervals are honest (they hold the truth)."""
    rng = random.Random(1)
    rows = []
    for gpu_type, truth in (("A", 0.7), ("B", 1.2)):
        for k in range(40):
            declared = rng.choice((1.0, 2.0, 4.0))
            rows.append(
                rec(
                    declared / truth * math.exp(rng.gauss(0, 0.05)),
                    declared,
                    gpu_type=gpu_type,
                    group=f"g{k % 3}",
                )
            )
    rows.append(rec(500.0, 1.0, gpu_type="A", group="g0"))
    cal = fit(rows)
    for gpu_type, truth in (("A", 0.7), ("B", 1.2)):
        s = cal.speed(gpu_type)
        assert s is not None and s.low <= truth <= s.high
        assert s.factor == pytest.approx(truth, rel=0.03)
        assert s.log_sigma == pytest.approx(0.05, rel=0.4)
    assert cal.speed("A").observations == 41  # type: ignore[union-attr]
    assert cal.speed("A").groups == 3  # type: ignore[union-attr]


def test_failures_migrations_and_resumed_attempts_are_left_out_and_counted() -> None:
    """Only whole successful attempts enter the fits; the rest are counted by reason."""
    rows = [
        rec(1.0),
        rec(1.0),
        rec(9.0, state="failed"),
        rec(0.2, state="stopped"),
        rec(0.3, state="lost"),
        rec(0.0, state="cancelled"),
        rec(0.4, resumed=True),
        rec(2.0, gpu_type=None),
        rec(3.0, declared_h=None),
    ]
    cal = fit(rows)
    assert cal.attempts == 9 and cal.used == 3
    assert cal.excluded == {
        "failed": 1,
        "stopped or moved": 1,
        "lost": 1,
        "never ran": 1,
        "resumed from a checkpoint": 1,
        "no GPU (CPU-only task)": 1,
        "no declared duration (speed fit only)": 1,
    }
    assert cal.speeds[0].observations == 2
    assert cal.durations[0].observations == 3
    assert cal.durations[0].duration_h == pytest.approx(1.0)


def test_tasks_without_a_group_count_for_speed_only() -> None:
    """No group: no duration fit, but the attempt still measures its type's speed."""
    cal = fit([rec(2.0, group=None), rec(2.0, group=None)])
    assert cal.durations == [] and cal.speeds[0].factor == pytest.approx(0.5)

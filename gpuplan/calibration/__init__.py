"""Learn from what ran: fit speeds and durations from attempt history, and plan with them.

`fit` (robust, in log space) turns `gpuplan.history` records into a `Calibration`;
`apply_calibration` turns a Problem and a Calibration into the Problem to solve and the notes that
say, in the plan, which values were measured and which declared.
"""

from __future__ import annotations

from gpuplan.calibration.apply import DEFAULT_MIN_OBSERVATIONS, apply_calibration
from gpuplan.calibration.fit import fit, grouped_median_mad
from gpuplan.calibration.model import Calibration, DurationFit, SpeedFit

__all__ = [
    "DEFAULT_MIN_OBSERVATIONS",
    "Calibration",
    "DurationFit",
    "SpeedFit",
    "apply_calibration",
    "fit",
    "grouped_median_mad",
]

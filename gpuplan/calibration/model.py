"""The calibration file (`gpuplan calibrate -o calibration.json`): fitted speeds and durations.

Every fitted value carries its spread, the standard error of its centre and how many observations
it rests on, so a reader (and `apply`) can tell evidence from noise.
"""

from __future__ import annotations

from pydantic import Field

from gpuplan.models.base import Spec

CALIBRATION_SCHEMA_VERSION = "1.0"


class SpeedFit(Spec):
    """A GPU type's measured speed relative to its declared one: true speed = declared x factor."""

    gpu_type: str = Field(min_length=1)
    factor: float = Field(gt=0, description="exp(-median ln(actual / declared hours)) over the attempts.")
    log_sigma: float = Field(ge=0, description="Robust spread of ln(actual / declared): 1.4826 x MAD.")
    log_se: float = Field(ge=0, description="Standard error of the median in ln units: 1.2533 x sigma / √n.")
    low: float = Field(gt=0, description="Lower end of the ≈95% interval of the factor.")
    high: float = Field(gt=0, description="Upper end of the ≈95% interval of the factor.")
    observations: int = Field(ge=1)
    groups: int = Field(
        ge=0, description="Distinct task groups among the observations (tasks without one: none)."
    )


class DurationFit(Spec):
    """A task group's measured duration on a GPU type: exp(median ln hours)."""

    group: str = Field(min_length=1)
    gpu_type: str = Field(min_length=1)
    duration_h: float = Field(gt=0)
    log_sigma: float = Field(ge=0, description="Robust spread of ln hours: 1.4826 x MAD.")
    log_se: float = Field(ge=0, description="Standard error of the median in ln units.")
    low_h: float = Field(gt=0, description="Lower end of the ≈95% interval of the duration.")
    high_h: float = Field(gt=0, description="Upper end of the ≈95% interval of the duration.")
    observations: int = Field(ge=1)


class Calibration(Spec):
    """Fitted values from one or many runs, and what was left out of the fit and why."""

    schema_version: str = CALIBRATION_SCHEMA_VERSION
    runs: list[str] = Field(default_factory=list, description="State directories read.")
    attempts: int = Field(ge=0, description="Attempts read.")
    used: int = Field(ge=0, description="Attempts that entered a fit (succeeded, whole, timed).")
    excluded: dict[str, int] = Field(
        default_factory=dict,
        description="Attempts left out of the fits, by reason (a reason naming one fit: of that fit only).",
    )
    speeds: list[SpeedFit] = Field(default_factory=list)
    durations: list[DurationFit] = Field(default_factory=list)

    def speed(self, gpu_type: str) -> SpeedFit | None:
        """The speed fit of a GPU type, or None."""
        return next((s for s in self.speeds if s.gpu_type == gpu_type), None)


__all__ = ["CALIBRATION_SCHEMA_VERSION", "Calibration", "DurationFit", "SpeedFit"]

"""The aggregated LP bound prices 'gpus_used' by load over capacity, so it holds with a horizon."""

from __future__ import annotations

from gpuplan.backends.fleet_brute import brute_force
from gpuplan.bounds.fleet import fleet_lower_bound
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet


def test_gpus_used_bound_with_a_horizon() -> None:
    """Shares 0.5 and 1 take turns on one GPU within the horizon: one GPU used, not 1.5."""
    p = Problem.model_validate(
        {
            "gpu_types": [{"name": "A", "memory_gb": 80}],
            "nodes": [{"id": "n", "gpu_counts": {"A": 1}}],
            "tasks": [
                {"id": "a", "gpu_share": 0.5, "work_h": 0.5, "optional": True},
                {"id": "b", "work_h": 0.5, "optional": True},
            ],
            "horizon_h": 2,
            "objective": {"kind": "gpus_used"},
        }
    )
    prog = compile_fleet(p).program
    best = brute_force(prog)
    assert best is not None and best[0] == 1.0
    assert fleet_lower_bound(prog).bound <= 1.0 + 1e-9

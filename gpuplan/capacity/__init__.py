"""Offline capacity planning: which fleet to rent for a workload, proven by an assignment.

`plan_capacity(workload, catalog)` sizes the fleet with a MILP over offers (sizing), proves it by
solving the full assignment on it with gpuplan and an EDF schedule (prove, schedule), and adds
capacity until the proof passes (planner). Sweeps and plots live in `sweep`.
"""

from gpuplan.capacity.models import CapacityReport, Catalog, Offer, OfferGPU, Workload, WorkloadTask
from gpuplan.capacity.planner import plan_capacity
from gpuplan.capacity.prepare import CapacityInputError

__all__ = [
    "CapacityInputError",
    "CapacityReport",
    "Catalog",
    "Offer",
    "OfferGPU",
    "Workload",
    "WorkloadTask",
    "plan_capacity",
]

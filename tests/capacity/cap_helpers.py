"""Small builders for capacity tests."""

from __future__ import annotations

from typing import Any

from gpuplan.capacity import Catalog, Offer, OfferGPU, Workload, WorkloadTask


def offer(
    name: str, *, mem: float = 80, speed: float = 1.0, per_node: int = 1, price: float = 1.0, **kw: Any
) -> Offer:
    """An offer of `per_node` GPUs of type `name.upper()`."""
    return Offer(
        name=name,
        gpu=OfferGPU(name=name.upper(), memory_gb=mem, speed=speed),
        gpus_per_node=per_node,
        price_per_node_hour=price,
        **kw,
    )


def workload(horizon: float, *tasks: dict[str, Any]) -> Workload:
    """A workload of tasks given as dicts (ids default to t0, t1, ...)."""
    return Workload(
        horizon_h=horizon, tasks=[WorkloadTask(**{"id": f"t{i}", **t}) for i, t in enumerate(tasks)]
    )


def catalog(*offers: Offer) -> Catalog:
    return Catalog(notice="test prices", offers=list(offers))

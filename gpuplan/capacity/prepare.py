"""Workload x catalog -> index arrays (durations, eligibility) and the reasons a task fits nowhere."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpuplan.capacity.models import Catalog, Workload
from gpuplan.errors import InputError

_TOL = 1e-9


class CapacityInputError(InputError):
    """Input that is well-formed JSON but inconsistent (e.g. an unknown GPU type): exit 2."""


@dataclass(frozen=True, eq=False)
class Prepared:
    """Arrays over tasks [T] and offers [O]; hours in user units."""

    workload: Workload
    catalog: Catalog
    work: np.ndarray  # [T] reference GPU-hours of one GPU
    gang: np.ndarray  # [T] int
    deadline: np.ndarray  # [T] hours (horizon when none)
    optional: np.ndarray  # [T] bool
    duration: np.ndarray  # [T, O] hours on offer o
    eligible: np.ndarray  # [T, O] bool: type allowed, memory, gang fits a node, duration <= deadline
    speed: np.ndarray  # [O]
    per_node: np.ndarray  # [O] int GPUs per node
    price: np.ndarray  # [O] on-demand price per node-hour
    reasons: dict[int, str]  # task index -> why it fits no offer (required or optional)

    @property
    def horizon(self) -> float:
        return self.workload.horizon_h

    @property
    def offer_names(self) -> list[str]:
        return [o.name for o in self.catalog.offers]


def prepare(wl: Workload, cat: Catalog) -> Prepared:
    """Check cross-references (CapacityInputError) and compute eligibility and reasons."""
    offers = cat.offers
    known = sorted({o.gpu.name for o in offers})
    for i, t in enumerate(wl.tasks):
        for k, name in enumerate(t.allowed_types or []):
            if name not in known:
                raise CapacityInputError(
                    f"workload.tasks[{i}].allowed_types[{k}]",
                    f"unknown GPU type {name!r} in task {t.id!r} (catalog has: {', '.join(known)})",
                )
    n_t = len(wl.tasks)
    work = np.array([t.work_h for t in wl.tasks], dtype=np.float64)
    gang = np.array([t.gpus for t in wl.tasks], dtype=np.int64)
    mem = np.array([t.gpu_memory_gb for t in wl.tasks], dtype=np.float64)
    deadline = np.array([wl.deadline(k) for k in range(n_t)], dtype=np.float64)
    optional = np.array([t.optional for t in wl.tasks], dtype=bool)
    speed = np.array([o.gpu.speed for o in offers])
    per_node = np.array([o.gpus_per_node for o in offers], dtype=np.int64)
    o_mem = np.array([o.gpu.memory_gb for o in offers])
    price = np.array([o.price_per_node_hour for o in offers])
    usable = np.array([o.max_nodes > 0 for o in offers])
    duration = work[:, None] / speed[None, :] if n_t else np.zeros((0, len(offers)))
    allowed = np.ones((n_t, len(offers)), dtype=bool)
    for i, t in enumerate(wl.tasks):
        if t.allowed_types is not None:
            allowed[i] = [o.gpu.name in t.allowed_types for o in offers]
    mem_ok = mem[:, None] <= o_mem[None, :] + _TOL
    gang_ok = gang[:, None] <= per_node[None, :]
    time_ok = duration <= deadline[:, None] * (1 + _TOL) + _TOL
    eligible = allowed & mem_ok & gang_ok & time_ok & usable[None, :]
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(~eligible.any(axis=1)):
        reasons[int(i)] = _reason(wl, cat, int(i), allowed[i], mem_ok[i], gang_ok[i], duration[i], usable)
    return Prepared(
        workload=wl,
        catalog=cat,
        work=work,
        gang=gang,
        deadline=deadline,
        optional=optional,
        duration=duration,
        eligible=eligible,
        speed=speed,
        per_node=per_node,
        price=price,
        reasons=reasons,
    )


def _reason(
    wl: Workload,
    cat: Catalog,
    i: int,
    allowed: np.ndarray,
    mem_ok: np.ndarray,
    gang_ok: np.ndarray,
    duration: np.ndarray,
    usable: np.ndarray,
) -> str:
    """The first rule (type, memory, gang, deadline, availability) that leaves task i no offer."""
    t = wl.tasks[i]
    offers = cat.offers
    if not allowed.any():
        return f"allowed types {', '.join(t.allowed_types or [])}: no offer has them"
    if not (allowed & mem_ok).any():
        best = max((o for o, a in zip(offers, allowed, strict=True) if a), key=lambda o: o.gpu.memory_gb)
        return (
            f"needs {t.gpu_memory_gb:g} GB per GPU; the largest eligible GPU has {best.gpu.memory_gb:g} GB"
            f" (offer {best.name})"
        )
    ok = allowed & mem_ok
    if not (ok & gang_ok).any():
        best = max((o for o, a in zip(offers, ok, strict=True) if a), key=lambda o: o.gpus_per_node)
        return (
            f"gang of {t.gpus} GPUs; the largest node with enough memory has {best.gpus_per_node} GPUs"
            f" (offer {best.name})"
        )
    ok &= gang_ok
    k = int(np.argmin(np.where(ok, duration, np.inf)))
    d = wl.deadline(i)
    if duration[k] > d * (1 + _TOL) + _TOL:
        what = "deadline" if t.deadline_h is not None else "horizon"
        return (
            f"needs {duration[k]:.4g} h on the fastest eligible GPU ({offers[k].gpu.name}, offer"
            f" {offers[k].name}) but its {what} is {d:g} h"
        )
    ok &= duration <= d * (1 + _TOL) + _TOL
    names = ", ".join(o.name for o, a in zip(offers, ok, strict=True) if a)
    return f"every offer that could take it has max_nodes 0 ({names})"


__all__ = ["CapacityInputError", "Prepared", "prepare"]

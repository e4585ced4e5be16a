"""The 'density' greedy order: required tasks first, then optional ones by penalty per size."""

from __future__ import annotations

import numpy as np

from gpuplan.heuristics.fleet_greedy import fleet_greedy, task_order
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet


def _problem(required_gang: bool = False) -> Problem:
    tasks = [{"id": "gang", "gpus": 8, "work_h": 1.0, "optional": not required_gang}]
    tasks += [{"id": f"s{i}", "gpus": 1, "work_h": 1.0, "optional": True} for i in range(8)]
    return Problem.model_validate(
        {
            "gpu_types": [{"name": "A100", "memory_gb": 80}],
            "nodes": [{"id": "n0", "gpu_counts": {"A100": 8}}],
            "tasks": tasks,
        }
    )


def test_density_places_the_small_tasks_where_gangs_first_places_one() -> None:
    """Where 'placed' counts tasks, eight singles beat one gang of eight (the gang-first orders
    place only the gang)."""
    p = compile_fleet(_problem()).program
    gang_first = fleet_greedy(p, order=task_order(p, "gpu"))
    density = fleet_greedy(p, order=task_order(p, "density"))
    assert int((gang_first.assign[:, 0] >= 0).sum()) == 1
    assert int((density.assign[:, 0] >= 0).sum()) == 8
    assert p.objective(density.assign) < p.objective(gang_first.assign)


def test_density_puts_required_tasks_first() -> None:
    """A required gang comes before any optional task, whatever their density."""
    p = compile_fleet(_problem(required_gang=True)).program
    order = task_order(p, "density")
    assert not p.optional[order[0]]
    st = fleet_greedy(p, order=order)
    assert np.all(st.assign[~p.optional, 0] >= 0)

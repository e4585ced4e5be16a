"""The fleet search runs the node-pattern bound and starts from its plan when every task is optional."""

from __future__ import annotations

import gpuplan
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet


def test_cpu_bound_nodes_are_seen_full() -> None:
    """Four nodes of 2 GPUs and 8 cores; six tasks of 1 GPU and 6 cores: one fits a node. Pooled
    CPU (32 cores) would hold five; the node patterns say four, which the plan places."""
    problem = {
        "gpu_types": [{"name": "A", "memory_gb": 40, "cost_per_hour": 1.0}],
        "nodes": [{"id": f"n{i}", "gpu_counts": {"A": 2}, "cpu_cores": 8, "memory_gb": 64} for i in range(4)],
        "tasks": [
            {"id": f"t{i}", "gpus": 1, "cpu_cores": 6, "work_h": 1 + i, "optional": True} for i in range(6)
        ],
    }
    plan = gpuplan.solve(problem, solver="greedy", time_limit_s=5)
    assert len(plan.assignments) == 4
    assert plan.phases[0] == "greedy(node patterns)"
    p = compile_fleet(Problem.model_validate(problem)).program
    drop = float(p.penalty[0])
    # at most four placeable: the bound counts two tasks dropped
    assert float(p.penalty.sum()) - float(plan.stats["pattern_bound"]) <= 4 * drop * (1 + 1e-9)
    assert plan.bound is not None and plan.bound >= float(plan.stats["pattern_bound"]) - 1e-6 * drop

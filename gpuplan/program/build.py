r"""The one builder: specs -> program. A Problem is built by `compile_fleet`; the matrix form is the
same program with its own resources (`compile_matrix`), so both go through one GAP view, one
integer scaling, one decode and one verifier.

The matrix form as a fleet program: GPU g is its own class and its own pseudo-node (no CPU or host
memory limits), tasks take no shares or memory, each task is required and takes one GPU, the cost
table is :math:`c_{tg}` (null entries are ineligible pairs) and each of the R load tables is a
further resource: :math:`\sum_t a_{rtg} x_{tg} \le b_{rg}`. A pair whose load alone exceeds a
capacity is ineligible.
"""

from __future__ import annotations

import numpy as np

from gpuplan.models import Matrix, MatrixProblem, Problem
from gpuplan.program.fleet import NONE, FleetCompiled, FleetProgram, compile_fleet

_TOL = 1e-9


def _table(rows: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)


def compile_matrix(source: MatrixProblem | Matrix) -> FleetCompiled:
    """The matrix form -> its fleet program (module docstring). Pure: the input is not touched."""
    m = source.matrix if isinstance(source, MatrixProblem) else source
    t_n, g_n = m.n_tasks, m.n_gpus
    cost = _table(m.cost)
    load = np.stack([np.nan_to_num(_table(lr)) for lr in m.loads()]) if t_n else np.zeros((0, 0, g_n))
    cap = np.array(m.capacities(), dtype=np.float64)
    elig = ~np.isnan(cost) & np.all(load <= cap[:, None, :] * (1 + _TOL) + _TOL, axis=0)
    cost = np.where(elig, cost, 0.0)
    load = np.where(elig[None], load, 0.0)
    names = ("load",) if cap.shape[0] == 1 else tuple(f"load{r}" for r in range(cap.shape[0]))
    zeros = np.zeros(t_n)
    program = FleetProgram(
        gang=np.ones(t_n, dtype=np.int64),
        share=zeros,
        gpu_mem=zeros,
        cpu=zeros,
        ram=zeros,
        same_type=np.zeros(t_n, dtype=bool),
        cpu_only=np.zeros(t_n, dtype=bool),
        spread=np.full(t_n, NONE, dtype=np.int64),
        dataset=np.full(t_n, NONE, dtype=np.int64),
        optional=np.zeros(t_n, dtype=bool),
        priority=np.zeros(t_n, dtype=np.int64),
        penalty=zeros,
        weight=np.ones(t_n),
        current=np.full((t_n, 1), NONE, dtype=np.int64),
        move_cost=zeros,
        gpu_node=np.arange(g_n, dtype=np.int64),
        gpu_type=np.zeros(g_n, dtype=np.int64),
        gpu_class=np.arange(g_n, dtype=np.int64),
        gpu_ok=np.ones(g_n, dtype=bool),
        mem_cap=np.zeros(g_n),
        node_cpu=np.full(g_n, np.inf),
        node_ram=np.full(g_n, np.inf),
        eligible_c=elig,
        cost_c=cost,
        load_c=np.zeros((t_n, g_n)),
        dataset_charge=np.zeros(0),
        transfer_each=zeros,
        capacity=1.0,
        horizon=False,
        w_gpus=0.0,
        w_nodes=0.0,
        w_balance=0.0,
        type_names=("",),
        extra_load_c=load,
        extra_cap=cap,
        extra_names=names,
        shares=False,
    )
    return FleetCompiled(
        program=program,
        source=m,
        task_ids=tuple(m.task_ids or (str(i) for i in range(t_n))),
        gpu_ids=tuple(m.gpu_ids or (str(i) for i in range(g_n))),
        node_ids=(None,) * g_n,
        duration=np.full((t_n, g_n), np.nan),
        terms=(("cost", 1.0),),
        money_c=cost,
        transfer_money=zeros,
    )


def build(source: Problem | MatrixProblem | Matrix) -> FleetCompiled:
    """The program of any input the engine takes (a Problem or the matrix form)."""
    if isinstance(source, Problem):
        return compile_fleet(source)
    if isinstance(source, MatrixProblem | Matrix):
        return compile_matrix(source)
    raise TypeError(f"cannot compile {type(source).__name__}; expected Problem or MatrixProblem")


__all__ = ["build", "compile_matrix"]

r"""The GAP core of a fleet program: a view, not a second builder.

A fleet program whose tasks each take one GPU, with no node resources, spread groups, datasets,
data charges, migration, CPU-only tasks, or criterion other than cost, *is* a generalized assignment
problem: binary :math:`x_{tg}` over the eligible pairs (eligibility is already decided per GPU
class: types, memory, labels, health, temperature, durations), one GPU per placed task, and per GPU
either share and memory side by side or GPU time within the horizon. `gap_view` lays it out as the
dense [tasks, GPUs] arrays of :class:`~gpuplan.program.gap.Program` that the GAP backends (the
portfolio, the LP and knapsack bounds, the branch and bound) accept, with the fleet program's own
drop penalties. Its solutions are decoded and verified as fleet plans, so a Problem has one builder,
one decode and one verifier whichever backends solve it. The matrix form's program is a GAP by
construction: its view lays out its own resources (``load``, or ``load0`` ... ``loadR-1``).
"""

from __future__ import annotations

import numpy as np

from gpuplan.errors import InputError
from gpuplan.models import Matrix, MatrixProblem, Problem
from gpuplan.program.build import build
from gpuplan.program.compile import Compiled, _finish
from gpuplan.program.fleet import FleetCompiled


def gap_like(fc: FleetCompiled) -> bool:
    """True when the fleet program is a GAP (module docstring): the predicate the view rests on."""
    p = fc.program
    return bool(
        fc.times is None  # a schedule says when, which the GAP cannot
        and np.all(p.gang == 1)
        and not p.host.any()
        and np.all(p.spread < 0)
        and np.all(p.dataset < 0)
        and not np.any(p.transfer_each)
        and np.all(p.current < 0)
        and not np.any(p.cpu)
        and not np.any(p.ram)
        and not (p.w_gpus or p.w_nodes or p.w_balance)
        and dict(fc.terms) == {"cost": 1.0}
    )


def gap_view(fc: FleetCompiled) -> Compiled | None:
    """The dense GAP program of `fc` (None unless `gap_like`): per GPU, the class's cost, load and
    duration; share and memory side by side, or GPU time with a horizon."""
    if not gap_like(fc):
        return None
    p = fc.program
    cls = p.gpu_class
    t_n, g_n = p.n_tasks, p.n_gpus
    eligible = p.eligible_c[:, cls] & p.gpu_ok[None, :]
    names: tuple[str, ...] = ()
    loads: list[np.ndarray] = []
    caps: list[np.ndarray] = []
    if p.shares and p.horizon:
        names = ("gpu_time_h",)
        loads = [p.load_c[:, cls]]
        caps = [np.full(g_n, p.capacity)]
    elif p.shares:
        names = ("gpu_share",)
        loads = [np.broadcast_to(p.share[:, None], (t_n, g_n))]
        caps = [np.ones(g_n)]
        if p.gpu_mem.any():
            names += ("gpu_memory_gb",)
            loads.append(np.broadcast_to(p.gpu_mem[:, None], (t_n, g_n)))
            caps.append(p.mem_cap)
    names += p.extra_names
    loads += [p.extra_load_c[r][:, cls] for r in range(len(p.extra_names))]
    caps += [p.extra_cap[r] for r in range(len(p.extra_names))]
    program = _finish(
        p.cost_c[:, cls],
        eligible,
        np.stack(loads).astype(np.float64) if t_n else np.zeros((len(names), 0, g_n)),
        np.stack(caps).astype(np.float64),
        p.optional,
        p.priority,
        names,
        penalty=p.penalty,
    )
    return Compiled(
        program=program,
        source=fc.source,
        task_ids=fc.task_ids,
        gpu_ids=fc.gpu_ids,
        gpu_nodes=tuple(fc.node_ids[n] for n in p.gpu_node),
        gpu_types=tuple(p.type_names[k] if p.shares else None for k in p.gpu_type),
        duration=fc.duration[:, cls] if p.shares else None,
    )


def compile_problem(source: Problem | MatrixProblem | Matrix) -> Compiled:
    """The GAP Program of a Problem or of the matrix form: the view of its one program. Raises
    InputError for a Problem that is not a GAP (use `compile_fleet` for the whole program)."""
    view = gap_view(build(source))
    if view is None:
        raise InputError(
            "problem",
            "not a GAP (gangs, node resources, spread, data, migration, CPU-only tasks or a criterion"
            " other than cost): its program is compile_fleet's",
        )
    return view


__all__ = ["compile_problem", "gap_like", "gap_view"]

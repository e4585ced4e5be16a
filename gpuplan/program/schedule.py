r"""The scheduled program: a fleet program whose tasks also get start times.

A problem is *scheduled* when a task uses ``release_h``, ``deadline_h``, ``due_h`` or ``after``, or
the objective has a time criterion. Placement rules are the fleet program's (eligibility, gangs on
one node, share and memory side by side, node CPU and host memory, spread groups), but they hold at
every instant rather than for the whole horizon.

Formulation
-----------
Each placed task t gets GPUs (the fleet program's :math:`x_{tg}`) and a start :math:`S_t`; it runs
without preemption for :math:`p_t = \max_{g: x_{tg}=1} d_{t,\mathrm{class}(g)}` hours (the slowest
of its gang's GPUs, data transfer included) and ends at :math:`E_t = S_t + p_t`. A gang starts and
ends together on all its GPUs.

.. math::

    S_t \ge r_t, \qquad E_t \le \bar d_t \;(\text{deadline, and the horizon } H),
    \qquad E_a \le S_b \;\; \forall (a, b) \in P \;(\text{b is after a}),

    \sum_{t \ni g,\, S_t \le \tau < E_t} s_t \le 1, \qquad
    \sum_{t \ni g,\, S_t \le \tau < E_t} m_t \le M_g \qquad \forall g, \tau,

    \sum_{t \text{ on } n,\, S_t \le \tau < E_t} c_t \le C_n, \qquad
    \sum_{t \text{ on } n,\, S_t \le \tau < E_t} r_t \le R_n \qquad \forall n, \tau,

and two tasks of one spread group never run on one node at the same instant (they may use one node
one after the other). A task is placed only when each of its predecessors is placed.

Objective, in user units: the fleet objective of the placement (cost, energy, ... and drop
penalties) plus

.. math::

    \lambda_{\mathrm{mk}} \max_t E_t + \lambda_{\mathrm{ct}} \sum_t w_t E_t
    + \lambda_{\mathrm{td}} \sum_t w_t \max(0, E_t - \delta_t)

over placed tasks (makespan, weighted completion time, weighted tardiness against due times
:math:`\delta_t`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuplan.program.fleet import FleetProgram


@dataclass(frozen=True, eq=False)
class ScheduleProgram:
    """Index-space arrays of the scheduled formulation (module docstring). Times in hours."""

    fleet: FleetProgram  # placement rules and placement objective; side by side (fleet.horizon False)
    duration_c: np.ndarray  # float64 [T, C]: hours on one GPU of each class, NaN where ineligible
    release: np.ndarray  # float64 [T]: earliest start, >= 0
    deadline: np.ndarray  # float64 [T]: latest end (the horizon folded in), inf when none
    due: np.ndarray  # float64 [T]: soft due time for tardiness, inf when none
    weight: np.ndarray  # float64 [T]: weight in completion time and tardiness, >= 0
    pred: np.ndarray  # int64 [E, 2]: rows (a, b): a ends before b starts (a DAG)
    w_makespan: float = 0.0
    w_completion: float = 0.0
    w_tardiness: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value)
                value.setflags(write=False)
                object.__setattr__(self, f.name, value)

    @property
    def n_tasks(self) -> int:
        return self.fleet.n_tasks

    def replace(self, **changes: Any) -> ScheduleProgram:
        return dataclasses.replace(self, **changes)


__all__ = ["ScheduleProgram"]

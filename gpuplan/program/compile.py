r"""The GAP Program's dense arrays and the integer scaling every GAP view (of a Problem or of the
matrix form) goes through.

Formulation
-----------
Tasks :math:`t \in T`, GPUs :math:`g \in G`, resources :math:`r \in R`; :math:`E \subseteq T \times G`
the eligible pairs (allowed type, enough GPU memory, healthy, cool enough, a duration known, and
every load within the GPU's capacity); :math:`O \subseteq T` the optional tasks.

.. math::

    \min \sum_{(t,g) \in E} c_{tg}\, x_{tg} + \sum_{t \in O} p_t\, y_t
    \quad\text{s.t.}\quad
    \sum_{g : (t,g) \in E} x_{tg} + y_t = 1 \;\; \forall t, \qquad y_t = 0 \;\; \forall t \notin O,

    \sum_{t : (t,g) \in E} a_{rtg}\, x_{tg} \le b_{rg} \;\; \forall r \in R,\, g \in G,
    \qquad x, y \in \{0, 1\}.

For a Problem, with :math:`d_{tg}` the duration of task t on g's type (explicit ``duration_h`` or
``work_h / speed``), :math:`s_t` its GPU share and :math:`\pi_g` the GPU's hourly price:
:math:`c_{tg} = d_{tg}\, s_t\, \pi_g`. Resources: without a horizon, tasks run side by side:
``gpu_share`` (:math:`a = s_t`, :math:`b = 1`) and ``gpu_memory_gb`` (:math:`a = m_t`,
:math:`b = M_g`); with a horizon H, each GPU works through its tasks in turn: ``gpu_time_h``
(:math:`a = s_t d_{tg}`, :math:`b = H`), and memory is a per-task eligibility test.

Priorities are lexicographic: the drop penalties :math:`p_t` come with the arrays, built once in
:mod:`gpuplan.program.priorities` for the fleet program whose GAP view this is (the matrix form has
no optional tasks), so one more placed task of a tier outweighs every cost and every lower-tier
task. Penalties that overflow 64-bit integers at the cost scale raise `TiersTooWide`: `solve` then
plans the problem tier by tier on the fleet program.

Integer program (CP-SAT): costs are multiplied by :math:`10^k` and rounded, the smallest k that
makes them integral (or the largest that keeps totals below about :math:`10^{12}`). Each resource
likewise (values below :math:`2^{40}`; `scale_resource`, the one rule every integer model uses);
when no power of ten makes a resource integral (a duration of 1/6 h, say), loads are rounded *up*
and capacities *down* from :math:`\mathrm{cap}\, s\, (1 + 10^{-9})` (``CAPACITY_TOLERANCE``, the
relative tolerance of the fleet program's checks), so every integer-feasible plan holds each
capacity within that tolerance; the integer program is also a relaxation of the exact one (its
bounds stay valid) when that slack covers one unit per task, which is checked (``loads_exact``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpuplan.models import Matrix, Problem, Scaling
from gpuplan.program.gap import Program
from gpuplan.program.priorities import TiersTooWide

_COST_TOTAL_BUDGET = 1e12
_LOAD_VALUE_BUDGET = float(2**40)
_INT_LIMIT = 2**62


@dataclass(frozen=True, eq=False)
class Compiled:
    """A Program plus the names needed to decode it (kept apart from the math)."""

    program: Program
    source: Problem | Matrix
    task_ids: tuple[str, ...]
    gpu_ids: tuple[str, ...]
    gpu_nodes: tuple[str | None, ...]
    gpu_types: tuple[str | None, ...]
    duration: np.ndarray | None  # float64 [T, G] hours, NaN where undefined (Problem only)


#: Relative capacity tolerance granted when loads cannot be scaled exactly (see module docstring).
CAPACITY_TOLERANCE = 1e-9


def _integral(scaled: np.ndarray) -> bool:
    """True when every value is an integer up to float noise (absolute, not relative, test)."""
    return bool(np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 + 1e-13 * np.abs(scaled)))


def _pow10_scale(values: np.ndarray, magnitude: float, budget: float, max_k: int = 9) -> tuple[float, bool]:
    """Smallest 10^k (k <= max_k) making `values` integral, else the largest 10^k within `budget`."""
    for k in range(max_k + 1):
        s = 10.0**k
        if magnitude * s > budget and k > 0:
            break
        if _integral(values * s):
            return s, True
    k = max(0, int(np.floor(np.log10(budget / max(magnitude, 1e-300)))))
    return 10.0 ** min(k, 15), False


@dataclass(frozen=True)
class IntResource:
    """One resource in integers: value_int = value x scale (module docstring)."""

    load: np.ndarray  # int64, shape of the float loads
    cap: np.ndarray  # int64, shape of the float capacities
    scale: float
    exact: bool  # every value scaled to an exact integer
    relaxes: bool  # every plan within the exact capacities stays integer-feasible


def scale_resource(load: np.ndarray, cap: np.ndarray, n_tasks: int) -> IntResource:
    """The one integer scaling of a resource (loads >= 0, finite capacities), for every integer
    model (the GAP view here, the fleet CP-SAT model): a power of ten making every value integral,
    else the largest within budget, loads rounded up and capacities down from cap x s x (1 + 1e-9)."""
    vals = np.concatenate([np.ravel(load), np.ravel(cap)])
    mag = max(float(np.abs(vals).max(initial=0.0)), 1e-300)
    s, exact = _pow10_scale(vals, mag, _LOAD_VALUE_BUDGET)
    if exact:
        return IntResource(
            np.round(load * s).astype(np.int64), np.round(cap * s).astype(np.int64), s, True, True
        )
    load_int = np.ceil(load * s - 1e-9).astype(np.int64)
    cap_int = np.floor(cap * s * (1.0 + CAPACITY_TOLERANCE)).astype(np.int64)
    # Each task loses less than one unit to the rounding up: the capacity's slack must cover them.
    relaxes = bool(np.all((cap_int >= cap * s + n_tasks) | (cap == 0)))
    return IntResource(load_int, cap_int, s, False, relaxes)


def _scale_loads(
    load: np.ndarray, capacity: np.ndarray, eligible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """Per resource: scale, integer loads and capacities, (all exact, integer program relaxes)."""
    r_n, t_n = load.shape[0], load.shape[1]
    scales = np.ones(r_n)
    load_int = np.zeros(load.shape, dtype=np.int64)
    cap_int = np.zeros(capacity.shape, dtype=np.int64)
    exact = relaxes = True
    for r in range(r_n):
        res = scale_resource(np.where(eligible, load[r], 0.0), capacity[r], t_n)
        scales[r], load_int[r], cap_int[r] = res.scale, res.load, res.cap
        exact &= res.exact
        relaxes &= res.relaxes
    return scales, load_int, cap_int, exact, relaxes


def _finish(
    cost: np.ndarray,
    eligible: np.ndarray,
    load: np.ndarray,
    capacity: np.ndarray,
    optional: np.ndarray,
    priority: np.ndarray,
    resource_names: tuple[str, ...],
    penalty: np.ndarray,
) -> Program:
    """The Program from dense arrays and drop penalties in user units (the fleet program's, for a
    Problem's GAP view; none for the matrix form, whose tasks are all required), scaled to integers.
    Raises TiersTooWide when the penalties overflow 64-bit integers at the cost scale."""
    cost = np.where(eligible, cost, 0.0)
    load = np.where(eligible[None, :, :], load, 0.0)
    load_scale, load_int, cap_int, load_exact, relaxes = _scale_loads(load, capacity, eligible)
    # A pair whose load alone exceeds the capacity can never be used.
    eligible = eligible & np.all(load_int <= cap_int[:, None, :], axis=0)
    cost = np.where(eligible, cost, 0.0)
    row_max = np.where(eligible, np.abs(cost), 0.0).max(axis=1, initial=0.0)
    cost_scale, cost_exact = _pow10_scale(
        cost[eligible], max(float(row_max.sum()), 1e-300), _COST_TOTAL_BUDGET
    )
    cost_int = np.where(eligible, np.round(cost * cost_scale), 0).astype(np.int64)
    given = np.where(optional, penalty, 0.0)
    if float(given.sum() + np.abs(cost).max(axis=1, initial=0.0).sum()) * cost_scale >= _INT_LIMIT:
        raise TiersTooWide("drop penalties too large for 64-bit integers at this cost scale")
    pen_int = np.round(given * cost_scale).astype(np.int64)
    return Program(
        cost=cost,
        eligible=eligible,
        load=np.where(eligible[None], load, 0.0),
        capacity=capacity.astype(np.float64),
        optional=optional,
        priority=priority.astype(np.int64),
        penalty=pen_int / cost_scale,
        cost_int=cost_int,
        penalty_int=pen_int,
        load_int=np.where(eligible[None], load_int, 0),
        capacity_int=cap_int,
        cost_scale=cost_scale,
        load_scale=load_scale,
        resource_names=resource_names,
        scaling_exact=bool(cost_exact and load_exact),
        loads_exact=bool(relaxes),
        costs_exact=bool(cost_exact),
    )


def duration_table(problem: Problem) -> np.ndarray:
    """Hours of each task on each GPU type, float64 [T, types]; NaN where undefined."""
    types = problem.gpu_types
    out = np.full((len(problem.tasks), len(types)), np.nan)
    for t, task in enumerate(problem.tasks):
        explicit = task.duration_h or {}
        for k, gt in enumerate(types):
            if gt.name in explicit:
                out[t, k] = explicit[gt.name]
            elif task.work_h is not None:
                out[t, k] = task.work_h / gt.speed
    return out


def scaling_of(program: Program) -> Scaling:
    """How a GAP program was made integer, for the plan's `scaling` field."""
    return Scaling(
        cost_scale=program.cost_scale,
        load_scales={n: float(s) for n, s in zip(program.resource_names, program.load_scale, strict=True)},
        exact=program.scaling_exact,
    )


__all__ = ["Compiled", "duration_table", "scaling_of"]

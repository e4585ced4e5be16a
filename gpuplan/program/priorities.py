r"""Drop penalties that make priorities lexicographic: built here, for both the GAP core and the fleet.

Optional tasks that can be placed somewhere fall into tiers :math:`1 < \dots < k` by priority.
With :math:`S` an upper bound on everything else the objective can add up to (the largest cost
of every task, transfer, migration and consolidation terms) and :math:`e_t \ge 0` a per-task extra
(the 'placed' criterion's weight), task :math:`t` of tier :math:`j` costs, when left out,

.. math::

    p_t = B_j + e_t, \qquad B_1 = 2S + 1 \;(\text{or } 0 \text{ when 'placed' is itself a
    criterion}), \qquad B_j = 2S + 1 + \sum_{i < j} \sum_{u \in \mathrm{tier}\ i} p_u .

One more placed task of tier j then outweighs every cost and every lower-tier task together, so
a single minimization honours priorities exactly. The bases grow like the product of the tier
sizes: three tiers of 4,000 tasks already pass :math:`10^{16}`, where a float64 objective can no
longer tell costs apart. Past `EXACT_LIMIT` the weights are not used (`tier_penalties` returns
None) and the caller solves tier by tier instead (`flat_penalties` then gives each left-out task
the first tier's base: the order between tiers is kept by the stages, not by the weights).
"""

from __future__ import annotations

import numpy as np

#: Largest total of drop penalties for which one weighted objective is still exact in float64
#: (costs keep about six significant digits below it).
EXACT_LIMIT = 1e15


class TiersTooWide(Exception):
    """Priority tiers whose weights would not be exact: solve the problem tier by tier."""


def tier_penalties(
    candidates: np.ndarray, priority: np.ndarray, span: float, extra: np.ndarray, first_free: bool
) -> np.ndarray | None:
    """float [T]: p_t for `candidates` (optional tasks with a home), 0 elsewhere; None when the
    tiers are too wide to weigh exactly (total above EXACT_LIMIT)."""
    return _weigh(candidates, priority, span, extra, first_free, EXACT_LIMIT)


def _weigh(
    candidates: np.ndarray,
    priority: np.ndarray,
    span: float,
    extra: np.ndarray,
    first_free: bool,
    limit: float,
) -> np.ndarray | None:
    penalty = np.zeros(candidates.shape[0])
    below = 0.0
    for j, level in enumerate(np.unique(priority[candidates])):
        members = candidates & (priority == level)
        base = 0.0 if (j == 0 and first_free) else 2.0 * span + 1.0 + below
        penalty[members] = base + extra[members]
        below += float(penalty[members].sum())
        if below > limit:
            return None
    return penalty


def flat_penalties(
    candidates: np.ndarray, priority: np.ndarray, span: float, extra: np.ndarray, first_free: bool
) -> np.ndarray:
    """float [T]: the first tier's penalty for every candidate (for problems solved tier by tier)."""
    penalty = _weigh(candidates, np.zeros_like(priority), span, extra, first_free, np.inf)
    assert penalty is not None
    return penalty


def tiers(candidates: np.ndarray, priority: np.ndarray) -> list[int]:
    """The priority levels of the candidates, highest first (the order of a tiered solve)."""
    return sorted({int(v) for v in priority[candidates]}, reverse=True)


__all__ = ["EXACT_LIMIT", "TiersTooWide", "flat_penalties", "tier_penalties", "tiers"]

r"""Lexicographic objectives at any size: which criteria one weighted sum can hold exactly.

A lexicographic objective orders its levels :math:`\ell_1, \dots, \ell_n` (the user's criteria,
plus migration as a last level when 'cost' is not among them). Each level has a range
:math:`\mathrm{range}_i` (the most it can differ between two plans) and a unit
:math:`\mathrm{unit}_i` (the least difference that counts; see `compile_fleet`). Within one
*stage* :math:`s = \{\ell_a, \dots, \ell_b\}` the levels are weighed by

.. math::

    \lambda_b = 1, \qquad \lambda_i = 1 + \frac{1}{\mathrm{unit}_i} \sum_{j = i+1}^{b} \lambda_j
    \mathrm{range}_j \quad (a \le i < b),

so one unit of an earlier level outweighs every later level of the stage together. The stage's
span, :math:`\sum_{i \in s} \lambda_i \mathrm{range}_i / \mathrm{unit}_b` units of its last level,
must stay within `LEXICOGRAPHIC_EXACT` (float64 tells about :math:`2^{53}` units apart). The levels
are cut into consecutive stages from the last one up: a level joins the stage below it unless that
would pass the limit, in which case it opens a new stage. One stage is the single weighted sum of
small objectives (the usual case, nothing changes); several are solved one after the other by
`solve_lexicographic` (`gpuplan.strategy.fleet`), each holding the values of the stages before it.
A stage of one level has weight 1 and is always exact, so any number of levels of any size is split
into at most :math:`n` exact stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Largest span of one stage, in units of its last level: float64 tells about 2^53 / 10 of them apart.
LEXICOGRAPHIC_EXACT = 1e15


def lexicographic_stages(
    levels: Sequence[str],
    rng: Mapping[str, float],
    unit: Mapping[str, float],
    limit: float | None = None,
) -> list[dict[str, float]]:
    """The stages of a lexicographic objective, highest first: for each, its levels' weights
    :math:`\\lambda` (module docstring). `levels` are ordered highest first; `limit` defaults to
    LEXICOGRAPHIC_EXACT."""
    limit = LEXICOGRAPHIC_EXACT if limit is None else limit
    stages: list[dict[str, float]] = []
    weights: dict[str, float] = {}
    acc, last = 0.0, ""
    for kind in reversed(levels):
        if rng[kind] <= 0:  # the same in every plan: any weight orders it, and it widens no stage
            weights[kind] = 1.0
            continue
        if not last:
            weights, acc, last = {**weights, kind: 1.0}, rng[kind], kind
            continue
        lam = 1.0 + acc / unit[kind]
        if (acc + lam * rng[kind]) / unit[last] > limit:
            stages.append(weights)
            weights, acc, last = {kind: 1.0}, rng[kind], kind
        else:
            weights[kind] = lam
            acc += lam * rng[kind]
    if weights:
        stages.append(weights)
    return [dict(reversed(stage.items())) for stage in reversed(stages)]  # both highest first


def one_stage_span(levels: Sequence[str], rng: Mapping[str, float], unit: Mapping[str, float]) -> float:
    """The span, in units of the last level, that one weighted sum over every level would need."""
    (weights,) = lexicographic_stages(levels, rng, unit, limit=float("inf"))
    return sum(w * rng[k] for k, w in weights.items()) / unit[levels[-1]]


__all__ = ["LEXICOGRAPHIC_EXACT", "lexicographic_stages", "one_stage_span"]

"""What the solver minimizes, and how long it may try."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gpuplan.models.base import Spec

SolverName = Literal["auto", "greedy", "cpsat", "milp"]

#: One criterion. Each is minimized; "placed" is minimized as the requested amount left unplaced.
TermKind = Literal[
    "cost",
    "energy",
    "balance",
    "gpus_used",
    "nodes_used",
    "placed",
    "makespan",
    "completion_time",
    "tardiness",
]

#: The criteria that need start times: a problem using one is scheduled (`Problem.scheduled`).
TIME_KINDS = ("makespan", "completion_time", "tardiness")


class Term(Spec):
    """One criterion of a weighted or lexicographic objective."""

    kind: TermKind = Field(description="The criterion (see Objective.kind).")
    weight: float = Field(
        default=1.0, gt=0, description="Multiplier in a weighted sum (ignored when lexicographic)."
    )


class Objective(Spec):
    """The objective. Priorities always come first; then the chosen criterion.

    Criteria: 'cost' (GPU-hours x price, plus migration and data transfer costs), 'energy' (GPU power x
    GPU-hours x energy price), 'balance' (the largest GPU utilization, in [0, 1]; refused in a
    scheduled problem, where a GPU's use changes over time), 'gpus_used' and 'nodes_used'
    (consolidation: fewer busy GPUs or nodes, less fragmentation), 'placed' (the requested amount
    left unplaced, for overloaded fleets: every optional task counts by `placed_weight`). Time
    criteria (they make the problem scheduled): 'makespan' (the latest end of a placed task, in
    hours), 'completion_time' (the sum of weight x end over placed tasks) and 'tardiness' (the sum of
    weight x max(0, end - due_h) over placed tasks with a due_h); a task's weight is its `weight`.
    'weighted' sums its terms times their weights; 'lexicographic' optimizes its terms in order, each
    one only among the optima of those before it.
    """

    kind: Literal[TermKind, "weighted", "lexicographic"] = Field(
        default="cost",
        description="The criterion, or 'weighted' / 'lexicographic' over `terms`. 'makespan', "
        "'completion_time' and 'tardiness' are time criteria: they schedule the tasks (start times).",
    )
    terms: list[Term] = Field(
        default_factory=list, description="Criteria for 'weighted' and 'lexicographic'."
    )
    energy_price_per_kwh: float = Field(default=0.15, ge=0, description="Price of one kWh, for 'energy'.")
    placed_weight: Literal["gpu", "count", "work"] = Field(
        default="gpu",
        description="What 'placed' counts per task: 'gpu' GPUs requested (gang size x share), 'count' "
        "tasks, 'work' GPU-hours on the reference GPU (work_h x gang size x share).",
    )

    @model_validator(mode="after")
    def _terms_match_kind(self) -> Objective:
        if self.kind in ("weighted", "lexicographic"):
            if not self.terms:
                raise ValueError(f"kind {self.kind!r} needs at least one entry in terms")
            kinds = [t.kind for t in self.terms]
            if len(set(kinds)) != len(kinds):
                raise ValueError(f"terms: each criterion at most once (got {', '.join(kinds)})")
        elif self.terms:
            raise ValueError(f"terms is only for kind 'weighted' or 'lexicographic' (kind is {self.kind!r})")
        return self

    def time_field(self) -> str | None:
        """Where this objective uses a time criterion ('kind' or 'terms[i].kind'), or None."""
        if self.kind in TIME_KINDS:
            return "kind"
        return next((f"terms[{i}].kind" for i, t in enumerate(self.terms) if t.kind in TIME_KINDS), None)

    def weights(self) -> list[tuple[str, float]]:
        """(criterion, weight) pairs; lexicographic weights are decided at compile time (weight 0 here)."""
        if self.kind == "weighted":
            return [(t.kind, t.weight) for t in self.terms]
        if self.kind == "lexicographic":
            return [(t.kind, 0.0) for t in self.terms]
        return [(self.kind, 1.0)]


#: Most solver threads one solve may ask for.
MAX_WORKERS = 1024
#: Largest seed: the solvers take 32-bit seeds.
MAX_SEED = 2**31 - 1


class SolveOptions(Spec):
    """Solver settings stored with a problem; the CLI and API arguments override them."""

    solver: SolverName = Field(default="auto", description="Backend: auto, greedy, cpsat or milp.")
    time_limit_s: float = Field(default=10.0, gt=0, description="Wall-clock limit for the whole solve.")
    workers: int | None = Field(
        default=None, ge=1, le=MAX_WORKERS, description="Solver threads; None means all cores."
    )
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Random seed, for reproducible runs.")

"""plan_capacity: size the fleet by the MILP, prove it by a schedule, add capacity until it fits.

Round 1: the sizing MILP (:mod:`gpuplan.capacity.sizing`) gives the cheapest fleet that holds the
aggregate work; :func:`gpuplan.capacity.prove.prove` tries to schedule every required task on it.
When required tasks F are left (their reference GPU-hours U):

* if one node can hold U, capacity grows **one node at a time**: every offer with room is tried
  (fleet + 1 node, re-routed and re-scheduled from scratch), cheapest added cost first, and the
  first that proves is taken. When none proves, the step keeps the one that left the most of U
  placed per unit of added cost (or, when none placed any, the offer able to take a task of F with
  the best price per GPU-hour of U it can hold) and goes on from there;
* else the MILP is re-solved keeping every node and adding, on the offers that can take a task of
  F, at least U (and at least one node).

Every fleet proved is one entry of `rounds`. The rounds stop at the first proven fleet, when no
node can be added (max_nodes), at max_rounds, or when time is up. Lower bounds: the LP relaxation
and the optimum of round 1's MILP (both relaxations of the true problem); the gap is quoted
against the stronger one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from gpuplan.capacity.models import (
    Alternative,
    CapacityReport,
    Catalog,
    FleetLine,
    Issue,
    Placement,
    Round,
    TypeUsage,
    Workload,
)
from gpuplan.capacity.prepare import Prepared, prepare
from gpuplan.capacity.prove import Proof, prove, rows
from gpuplan.capacity.sizing import Cuts, Sizing, best_commitment, classes, fleet_cost, solve_sizing

Progress = Callable[[str], None]


def _fleet_dict(prep: Prepared, nodes: tuple[int, ...]) -> dict[str, int]:
    return {o.name: int(n) for o, n in zip(prep.catalog.offers, nodes, strict=True) if n}


def _describe(prep: Prepared, nodes: tuple[int, ...]) -> str:
    return ", ".join(f"{n} x {name}" for name, n in _fleet_dict(prep, nodes).items()) or "no nodes"


def plan_capacity(
    workload: Workload,
    catalog: Catalog,
    *,
    time_limit_s: float = 30.0,
    proof_time_s: float = 6.0,
    workers: int | None = None,
    seed: int = 0,
    max_rounds: int = 24,
    alternatives: int = 3,
    progress: Progress | None = None,
) -> CapacityReport:
    """Choose, prove and cost a fleet for `workload` from `catalog` (see the module docstring)."""
    started = time.monotonic()
    deadline = started + time_limit_s
    say = progress or (lambda _msg: None)
    prep = prepare(workload, catalog)
    base = dict(horizon_h=workload.horizon_h, currency=catalog.currency, price_notice=catalog.notice)
    required_bad = [
        Issue(task=workload.tasks[t].id, reason=r)
        for t, r in sorted(prep.reasons.items())
        if not prep.optional[t]
    ]
    if required_bad:
        say(
            f"infeasible: {len(required_bad)} required task(s) fit no offer, e.g. "
            f"{required_bad[0].task}: {required_bad[0].reason}"
        )
        return CapacityReport(
            status="infeasible",
            message=f"{len(required_bad)} required task(s) fit no offer",
            infeasible=required_bad,
            stats={"wall_s": round(time.monotonic() - started, 3)},
            **base,
        )
    cls = classes(prep)
    lp = solve_sizing(prep, integer=False, cls=cls)
    first = solve_sizing(prep, cls=cls, time_limit_s=max(1.0, 0.3 * time_limit_s))
    stats: dict[str, bool | int | float | str] = {
        "tasks": len(workload.tasks),
        "required_tasks": int((~prep.optional).sum()),
        "offers": len(catalog.offers),
        "sizing_classes": int(cls.work.shape[0]),
        "deadline_levels": int(cls.levels.shape[0]),
        "sizing_s": round(first.wall_s + lp.wall_s, 3),
    }
    if first.nodes is None:
        why = (
            "no fleet within the offers' node ranges holds the required work (the sizing MILP, a "
            "relaxation, is infeasible): raise max_nodes, lengthen the horizon or relax deadlines"
            if first.status == "infeasible"
            else "the sizing MILP found no fleet within the time limit"
        )
        say(f"infeasible: {why}")
        stats["wall_s"] = round(time.monotonic() - started, 3)
        return CapacityReport(
            status="infeasible" if first.status == "infeasible" else "unproven",
            message=why,
            infeasible=[Issue(task="*", reason=why)] if first.status == "infeasible" else [],
            stats=stats,
            lp_bound=lp.cost,
            **base,
        )
    assert first.nodes is not None
    loop = _Rounds(prep, cls, workers, seed, proof_time_s, deadline, say)
    nodes, proof = first.nodes, loop.prove(first.nodes, "sizing MILP")
    while not proof.ok and len(loop.rounds) < max_rounds:
        if time.monotonic() >= deadline:
            say("time limit reached before a fleet was proven")
            break
        step = loop.add_capacity(nodes, proof, max_rounds)
        if step is None:
            say("cannot add a node that could take the failed tasks: their offers are at max_nodes")
            break
        nodes, proof = step
    rounds = loop.rounds
    committed = best_commitment(prep, nodes)
    cost = fleet_cost(prep, nodes, committed)
    milp_bound = first.bound
    best_bound = max(b for b in (lp.cost, milp_bound) if b is not None) if (lp.cost or milp_bound) else None
    stats.update(
        {
            "rounds": len(rounds),
            "proof_s": round(loop.proof_s, 3),
            "engine_status": proof.engine_status,
            "first_milp_status": first.status,
        }
    )
    alts = _alternatives(prep, cls, nodes, first, alternatives, deadline) if alternatives else []
    stats["wall_s"] = round(time.monotonic() - started, 3)
    status = "proven" if proof.ok else "unproven"
    message = (
        f"proven in {len(rounds)} round(s)"
        if proof.ok
        else f"no proven fleet after {len(rounds)} round(s): {rounds[-1].why}"
    )
    return CapacityReport(
        status=status,
        message=message,
        fleet=_fleet_lines(prep, nodes, committed),
        cost=cost,
        lp_bound=lp.cost,
        milp_bound=milp_bound,
        gap=_gap(cost, best_bound),
        gap_lp=_gap(cost, lp.cost),
        utilization=_usage(prep, proof) if proof.ok else [],
        rounds=rounds,
        alternatives=alts,
        assignments=[
            Placement(
                task=tid,
                offer=oname,
                node=f"{oname}#{ordinal}",
                gpus=gpus,
                start_h=round(s, 6),
                end_h=round(e, 6),
                deadline_h=float(min(prep.deadline[k], prep.horizon)),
            )
            for (tid, oname, ordinal, gpus, s, e), k in zip(
                rows(prep, proof.schedule), sorted(proof.schedule.where), strict=True
            )
        ]
        if proof.ok
        else [],
        optional_left_out=[
            Issue(
                task=workload.tasks[t].id,
                reason=prep.reasons.get(t, "no room left on the fleet once required work is placed"),
            )
            for t in proof.optional_left
        ],
        infeasible=[],
        stats=stats,
        **base,
    )


class _Rounds:
    """Proves fleets, records each as a Round, and grows a fleet that failed (module docstring)."""

    def __init__(
        self,
        prep: Prepared,
        cls: object,
        workers: int | None,
        seed: int,
        proof_time_s: float,
        deadline: float,
        say: Progress,
    ) -> None:
        self.prep, self.cls, self.workers, self.seed = prep, cls, workers, seed
        self.proof_time_s, self.deadline, self.say = proof_time_s, deadline, say
        self.rounds: list[Round] = []
        self.proof_s = 0.0

    def cost(self, nodes: tuple[int, ...]) -> float:
        return fleet_cost(self.prep, nodes, best_commitment(self.prep, nodes))

    def unmet(self, proof: Proof) -> float:
        return float(sum(self.prep.gang[t] * self.prep.work[t] for t in proof.failed))

    def prove(self, nodes: tuple[int, ...], change: str) -> Proof:
        """Prove `nodes`, record the round and say how it went."""
        remaining = self.deadline - time.monotonic()
        proof = prove(
            self.prep,
            nodes,
            cls=self.cls,
            time_limit_s=max(0.5, min(self.proof_time_s, 0.6 * remaining)),
            workers=self.workers,
            seed=self.seed,
        )
        self.proof_s += proof.wall_s
        wl = self.prep.workload
        failed_ids = [wl.tasks[t].id for t in proof.failed]
        why = (
            ""
            if proof.ok
            else f"{len(proof.failed)} required task(s) did not fit: {', '.join(failed_ids[:5])}"
        )
        cost = self.cost(nodes)
        self.rounds.append(
            Round(
                round=len(self.rounds) + 1,
                change=change,
                fleet=_fleet_dict(self.prep, nodes),
                cost=cost,
                proven=proof.ok,
                method=proof.method,
                failed=failed_ids[:20],
                n_failed=len(proof.failed),
                why=why,
            )
        )
        self.say(
            f"round {len(self.rounds)} ({change}): {_describe(self.prep, nodes)} costs {cost:,.2f} "
            f"{self.prep.catalog.currency}: " + ("proven (" + proof.method + ")" if proof.ok else why)
        )
        return proof

    def add_capacity(
        self, nodes: tuple[int, ...], proof: Proof, max_rounds: int
    ) -> tuple[tuple[int, ...], Proof] | None:
        """One step of growth (module docstring); None when no node can be added."""
        prep = self.prep
        offers = prep.catalog.offers
        base = self.cost(nodes)
        room = [o for o in range(len(offers)) if nodes[o] < offers[o].max_nodes]
        if not room:
            return None
        need = self.unmet(proof)
        fits = sorted({int(o) for t in proof.failed for o in np.flatnonzero(prep.eligible[t]) if o in room})
        if not fits:
            return None
        one = max(float(prep.per_node[o] * prep.speed[o] * prep.horizon) for o in fits)
        if need > one:
            return self._milp_step(nodes, proof, need)

        def plus(o: int) -> tuple[int, ...]:
            return tuple(n + (k == o) for k, n in enumerate(nodes))

        extra = {o: self.cost(plus(o)) - base for o in room}
        tried: dict[int, Proof] = {}
        for o in sorted(room, key=lambda o: (extra[o], o)):
            if len(self.rounds) >= max_rounds or time.monotonic() >= self.deadline:
                break
            tried[o] = self.prove(plus(o), f"+1 {offers[o].name}")
            if tried[o].ok:
                return plus(o), tried[o]
        gain = {o: (need - self.unmet(p)) / max(extra[o], 1e-9) for o, p in tried.items()}
        if gain and max(gain.values()) > 0:
            o = max(sorted(gain), key=lambda o: gain[o])
            return plus(o), tried[o]
        # Nothing placed more: the offer that can take a failed task with the best price per GPU-hour.
        held = {
            o: min(need, float(prep.per_node[o] * prep.speed[o] * prep.horizon)) / max(extra[o], 1e-9)
            for o in fits
        }
        o = max(fits, key=lambda o: (held[o], -o))
        return plus(o), tried[o] if o in tried else self.prove(plus(o), f"+1 {offers[o].name}")

    def _milp_step(
        self, nodes: tuple[int, ...], proof: Proof, need: float
    ) -> tuple[tuple[int, ...], Proof] | None:
        """Re-size with the MILP: keep every node, add at least `need` on the failed tasks' offers."""
        prep = self.prep
        group = sorted({int(o) for t in proof.failed for o in np.flatnonzero(prep.eligible[t])})
        coef = {o: float(prep.per_node[o] * prep.speed[o] * prep.horizon) for o in group}
        have = sum(coef[o] * nodes[o] for o in group)
        cuts = Cuts(floor={o: n for o, n in enumerate(nodes) if n})
        cuts.at_least.append((coef, have + max(need, min(coef.values()))))
        nxt = solve_sizing(
            prep,
            cuts=cuts,
            cls=self.cls,  # type: ignore[arg-type]
            time_limit_s=max(1.0, min(10.0, self.deadline - time.monotonic())),
        )
        if nxt.nodes is None:
            return None
        return nxt.nodes, self.prove(nxt.nodes, "sizing MILP, more room for the failed work")


def _gap(cost: float | None, bound: float | None) -> float | None:
    if cost is None or bound is None:
        return None
    return max(0.0, cost - bound) / max(abs(cost), 1e-9)


def _fleet_lines(prep: Prepared, nodes: tuple[int, ...], committed: tuple[bool, ...]) -> list[FleetLine]:
    out = []
    for o, off in enumerate(prep.catalog.offers):
        if not nodes[o]:
            continue
        rate = off.price_per_node_hour * ((1 - off.commit_discount) if committed[o] else 1.0)
        out.append(
            FleetLine(
                offer=off.name,
                gpu_type=off.gpu.name,
                nodes=int(nodes[o]),
                gpus=int(nodes[o] * off.gpus_per_node),
                committed=bool(committed[o]),
                node_price_per_hour=rate,
                cost=rate * nodes[o] * prep.horizon,
            )
        )
    return out


def _usage(prep: Prepared, proof: Proof) -> list[TypeUsage]:
    sched = proof.schedule
    used = np.zeros(len(prep.catalog.offers))
    for t, (j, gpus) in sched.where.items():
        used[sched.fleet.offer[j]] += len(gpus) * (sched.end[t] - sched.start[t])
    counts = np.bincount(sched.fleet.offer, minlength=len(prep.catalog.offers))
    out = []
    for o, off in enumerate(prep.catalog.offers):
        if not counts[o]:
            continue
        gpus = int(counts[o] * off.gpus_per_node)
        avail = gpus * prep.horizon
        out.append(
            TypeUsage(
                offer=off.name,
                gpu_type=off.gpu.name,
                gpus=gpus,
                gpu_hours_used=round(float(used[o]), 6),
                gpu_hours_available=avail,
                utilization=round(float(used[o] / avail), 6),
            )
        )
    return out


def _alternatives(
    prep: Prepared, cls: object, nodes: tuple[int, ...], first: Sizing, limit: int, deadline: float
) -> list[Alternative]:
    """Cheapest sizing without each offer of the chosen fleet, and the next count vector."""
    ref = float(first.cost or 0.0)
    out: list[Alternative] = []
    budget = lambda: max(0.5, min(5.0, deadline - time.monotonic()))  # noqa: E731
    for o in [o for o, n in enumerate(nodes) if n]:
        s = solve_sizing(prep, cuts=Cuts(forbid=(o,)), cls=cls, time_limit_s=budget())  # type: ignore[arg-type]
        if s.nodes is not None and s.cost is not None:
            out.append(
                Alternative(
                    without=prep.catalog.offers[o].name,
                    fleet=_fleet_dict(prep, s.nodes),
                    cost=s.cost,
                    extra_cost=s.cost - ref,
                )
            )
    assert first.nodes is not None
    s = solve_sizing(prep, cuts=Cuts(exclude=[first.nodes]), cls=cls, time_limit_s=budget())  # type: ignore[arg-type]
    if s.nodes is not None and s.cost is not None:
        out.append(
            Alternative(
                without="different counts",
                fleet=_fleet_dict(prep, s.nodes),
                cost=s.cost,
                extra_cost=s.cost - ref,
            )
        )
    out.sort(key=lambda a: a.cost)
    seen: set[tuple[tuple[str, int], ...]] = set()
    unique = []
    for alt in out:
        key = tuple(sorted(alt.fleet.items()))
        if key not in seen:
            seen.add(key)
            unique.append(alt)
    return unique[:limit]


__all__ = ["plan_capacity"]

"""The sizing MILP against brute force over node counts on tiny catalogs."""

from __future__ import annotations

import pytest
from cap_helpers import catalog, offer, workload
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuplan.capacity import plan_capacity
from gpuplan.capacity.prepare import prepare
from gpuplan.capacity.sizing import solve_sizing
from tests.oracles import cheapest_vector, packs
from tests.strategies import offers_and_works


@settings(max_examples=30, deadline=None)
@given(offers_and_works(horizon=40.0))
def test_milp_matches_brute_force_aggregate(case):
    """Single-GPU tasks that fit everywhere: the MILP optimum is the cheapest count vector whose
    GPU-hours (speed-adjusted) cover the work, committed offers billed at their discount."""
    specs, works = case
    cat = catalog(
        *[
            offer(f"o{i}", speed=s, per_node=k, price=p, commit_discount=d, commit_min_nodes=m, max_nodes=mx)
            for i, (s, k, p, d, m, mx) in enumerate(specs)
        ]
    )
    horizon = 40.0
    wl = workload(horizon, *[{"work_h": float(w)} for w in works])
    prep = prepare(wl, cat)
    need = sum(t.work_h for t in wl.tasks)

    def covers(vec: tuple[int, ...]) -> bool:
        cap = sum(n * o.gpus_per_node * o.gpu.speed * horizon for o, n in zip(cat.offers, vec, strict=True))
        return cap + 1e-9 >= need

    best = cheapest_vector(cat, horizon, [o.max_nodes for o in cat.offers], covers)
    res = solve_sizing(prep)
    if best is None:
        assert res.status == "infeasible"
    else:
        assert res.cost == pytest.approx(best, rel=1e-6)
        lp = solve_sizing(prep, integer=False)
        assert lp.cost <= res.cost + 1e-6


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1.0, 2.0]), st.integers(1, 6)), min_size=1, max_size=2),
    st.lists(st.integers(5, 30), min_size=1, max_size=5),
)
def test_bounds_and_proof_against_true_optimum(specs, works):
    """Brute force over counts with exact bin packing: lp_bound <= milp_bound <= true optimum <= cost."""
    horizon = 30.0
    cat = catalog(*[offer(f"o{i}", speed=s, price=p, max_nodes=3) for i, (s, p) in enumerate(specs)])
    wl = workload(horizon, *[{"work_h": float(w)} for w in works])
    durs = sorted(([w / s for s, _ in specs] for w in works), key=lambda d: -max(d))

    def fits(vec: tuple[int, ...]) -> bool:
        return packs(durs, [(o, horizon) for o, n in enumerate(vec) for _ in range(n)])

    true = cheapest_vector(cat, horizon, [3] * len(specs), fits)
    rep = plan_capacity(wl, cat, alternatives=0, max_rounds=12)
    if true is None:
        assert rep.status != "proven"
        return
    assert rep.lp_bound <= rep.milp_bound + 1e-6
    assert rep.milp_bound <= true + 1e-6
    if rep.status == "proven":
        assert rep.cost >= true - 1e-6

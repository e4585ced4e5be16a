"""The greedy's node-pruned candidate search, and its spot index, pick exactly the spot the full check
would."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.size_ladder import ladder_problem
from gpuplan.api import parse_problem
from gpuplan.heuristics import fleet_greedy as fleet_greedy_module
from gpuplan.heuristics.fleet_greedy import FleetState, fleet_greedy, task_order
from gpuplan.models import Problem
from gpuplan.program.fleet import FleetProgram, compile_fleet
from tests.strategies import SETTINGS, fleets


class FullCheck(FleetState):
    """The reference: every GPU checked, no node pruned."""

    def candidates(self, t: int) -> np.ndarray:
        return np.flatnonzero(self.gpu_ok(t, self.node_ok(t)))


@SETTINGS
@given(fleets(), st.data())
def test_pruned_candidates_give_the_same_spot(data: dict, draw: st.DataObject) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    state, ref = FleetState(p), FullCheck(p)
    ref.indexed = False  # the reference searches every node, every time
    placed = draw.draw(st.integers(0, p.n_tasks))
    for t in task_order(p)[:placed].tolist():  # some tasks placed first, where they fit
        spot = state.best_spot(t)
        assert (spot is None) == (ref.best_spot(t) is None)
        if spot is not None:
            state.place(t, spot)
            ref.place(t, spot)
    for t in range(p.n_tasks):
        full = ref.candidates(t)
        pruned = state.candidates(t)
        assert set(pruned.tolist()) <= set(full.tolist())
        if p.gang[t] == 1:
            assert pruned.tolist() == full.tolist()
        a, b = state.best_spot(t), ref.best_spot(t)
        assert (a is None and b is None) or (a is not None and b is not None and a.tolist() == b.tolist())


def _unindexed(p: FleetProgram) -> FleetState:
    st = FleetState(p)
    st.indexed = False
    return st


def _same_spot(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.tolist() == b.tolist())


@pytest.mark.parametrize(("n", "seed", "priorities"), [(300, 0, False), (300, 1, True), (600, 2, False)])
def test_spot_index_follows_places_and_removals(n: int, seed: int, priorities: bool) -> None:
    """On a ladder fleet (many nodes alike), the indexed search gives the full search's spot at every
    step of a greedy pass, and after tasks are taken off again (nodes emptied, kinds re-searched)."""
    p = compile_fleet(parse_problem(ladder_problem(n, seed=seed, priorities=priorities))).program
    fast, slow = FleetState(p), _unindexed(p)
    rng = np.random.default_rng(seed)
    order = task_order(p, "gpu")
    for i, t in enumerate(order.tolist()):
        a, b = fast.best_spot(t), slow.best_spot(t)
        assert _same_spot(a, b), (i, t)
        if a is not None:
            fast.place(t, a)
            slow.place(t, a)
        if i % 25 == 24:  # take a few placed tasks off
            placed = np.flatnonzero(fast.assign[:, 0] >= 0)
            for u in rng.choice(placed, size=min(5, placed.size), replace=False).tolist():
                fast.remove(u)
                slow.remove(u)
    assert np.array_equal(fast.assign, slow.assign)
    assert fast.assign[:, 0].max() >= 0


@SETTINGS
@given(fleets())
def test_indexed_greedy_pass_equals_the_full_search(data: dict) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    fast = fleet_greedy(p)
    indexed, fleet_greedy_module.INDEXED = fleet_greedy_module.INDEXED, False
    try:
        slow = fleet_greedy(p)
    finally:
        fleet_greedy_module.INDEXED = indexed
    assert np.array_equal(fast.assign, slow.assign)

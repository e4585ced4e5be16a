"""The greedy's node-pruned candidate search picks exactly the spot the full check would."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gpuplan.heuristics.fleet_greedy import FleetState, task_order
from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
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

"""A neighbourhood of a fleet program: its plans splice back into plans of the whole program, and
its objective moves by what the whole program's does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gpuplan.models import Problem
from gpuplan.program.fleet import compile_fleet
from gpuplan.program.neighbourhood import from_sub, sub_fleet, to_sub
from tests.oracles import fleet_assignments, fleet_brute_force
from tests.strategies import SETTINGS, fleets


@SETTINGS
@given(fleets(), st.data())
def test_a_neighbourhood_plan_splices_into_a_plan_of_the_whole(data: dict, draw: st.DataObject) -> None:
    p = compile_fleet(Problem.model_validate(data), flat_tiers=True).program
    plans = [a for a in fleet_assignments(p) if not p.violations(a)]
    assume(plans)
    assign = plans[draw.draw(st.integers(0, len(plans) - 1))]
    nodes = np.array(sorted(draw.draw(st.sets(st.integers(0, p.n_nodes - 1), min_size=1))))
    placed = assign[:, 0] >= 0
    on = placed & np.isin(p.gpu_node[np.maximum(assign[:, 0], 0)], nodes)
    tasks = np.flatnonzero(on | (~placed & p.optional))
    sub, gpus = sub_fleet(p, tasks, nodes)
    hint = to_sub(gpus, p.n_gpus, assign[tasks])
    assert sub.violations(hint) == []
    ref = fleet_brute_force(sub)
    assert ref is not None  # the hint is a plan of the neighbourhood
    best, sub_assign = ref
    new = assign.copy()
    new[tasks] = from_sub(gpus, sub_assign)
    assert p.violations(new) == []
    if p.w_balance == 0:
        delta = p.objective(new) - p.objective(assign)
        assert delta == pytest.approx(best - sub.objective(hint), rel=1e-9, abs=1e-9)

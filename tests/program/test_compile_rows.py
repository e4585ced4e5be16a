"""compile_fleet's eligibility rules worked out per distinct kind of task (`_placement_rows`,
`_gang_fits`) give what the task-by-task rules give."""

from __future__ import annotations

import numpy as np
import pytest

from gpuplan.models import Task
from gpuplan.program.fleet import _gang_fits, _placement_rows


def _gang_fits_one_by_one(
    elig: np.ndarray,
    gang: np.ndarray,
    same_type: np.ndarray,
    g_class: np.ndarray,
    g_ok: np.ndarray,
    g_node: np.ndarray,
    g_type: np.ndarray,
    n_types: int,
) -> np.ndarray:
    """The rule task by task: k usable GPUs of eligible classes on one node (of one type)."""
    fits = np.ones(gang.shape[0], dtype=bool)
    for i in range(gang.shape[0]):
        if gang[i] > 1:
            usable = elig[i, g_class] & g_ok
            key = g_node * n_types + g_type if same_type[i] else g_node
            fits[i] = np.bincount(key[usable], minlength=1).max(initial=0) >= gang[i]
    return fits


@pytest.mark.parametrize("seed", range(20))
def test_gang_fits_matches_the_task_by_task_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_nodes, n_types = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    g_node = np.sort(rng.integers(0, n_nodes, size=int(rng.integers(1, 30))))
    g_type = rng.integers(0, n_types, size=g_node.size)
    g_class = g_type * 2 + rng.integers(0, 2, size=g_node.size)  # two classes per type
    g_ok = rng.random(g_node.size) < 0.8
    t_n = int(rng.integers(1, 40))
    elig = rng.random((t_n, 2 * n_types)) < 0.6
    gang = rng.choice([1, 2, 3, 4, 8], size=t_n)
    same_type = rng.random(t_n) < 0.5
    got = _gang_fits(elig, gang, same_type, g_class, g_ok, g_node, g_node * n_types + g_type)
    want = _gang_fits_one_by_one(elig, gang, same_type, g_class, g_ok, g_node, g_type, n_types)
    assert np.array_equal(got, want)


def test_placement_rows_match_each_tasks_rules() -> None:
    """Allowed and forbidden types and node selectors, repeated across tasks, row by row."""
    type_index = {"A": 0, "B": 1, "C": 2}
    c_type = np.array([0, 1, 2, 0, 1, -1])  # the last class is a host slot's
    c_labels = [{}, {"zone": "a"}, {"zone": "b"}, {"zone": "a", "rack": "1"}, {"zone": "b"}, {}]
    rules = [
        {},
        {"allowed_types": ["A"]},
        {"allowed_types": ["A", "C"], "node_selector": {"zone": "a"}},
        {"forbidden_types": ["B"]},
        {"node_selector": {"zone": "b"}},
        {"node_selector": {"zone": "a", "rack": "1"}},
        {"allowed_types": ["B"], "forbidden_types": ["B"]},
    ]
    tasks = [Task(id=f"t{i}", gpus=1, work_h=1.0, **rules[i % len(rules)]) for i in range(3 * len(rules))]
    rows = _placement_rows(tasks, type_index, c_type, c_labels)
    for t, row in zip(tasks, rows, strict=True):
        want = [
            (t.allowed_types is None or k in [type_index[x] for x in t.allowed_types])
            and k not in [type_index[x] for x in t.forbidden_types or []]
            and all(lab.get(key) == v for key, v in (t.node_selector or {}).items())
            for k, lab in zip(c_type, c_labels, strict=True)
        ]
        assert row.tolist() == want, t.id

r"""A plan from whole GPU configurations: the node-pattern program with the nodes of each class
merged into one, solved in integers, then split back into nodes.

With the shapes i (count :math:`N_i`, gang :math:`k_i`, CPU :math:`c_i`, host memory :math:`r_i`),
kinds :math:`\kappa` and GPU configurations j of `gpuplan.bounds.node_patterns`, node class b
(:math:`M_b` nodes of :math:`G_b` usable GPUs, CPU :math:`C_b` and host memory :math:`R_b` each)
takes :math:`x_{bi}` tasks of shape i and sets up :math:`u_{bj}` of its GPUs as configuration j:

.. math::

    \sum_j u_{bj} \le M_b G_b,\qquad \sum_{i \in \kappa} k_i x_{bi} \le \sum_j n_{j\kappa} u_{bj}
    \;\; \forall \kappa,\qquad \sum_i c_i x_{bi} \le M_b C_b,\qquad \sum_i r_i x_{bi} \le M_b R_b,
    \qquad \sum_b x_{bi} \le N_i,

x and u whole numbers (CPU and host memory on the node patterns' grid, demands rounded up and
capacities down). It keeps every GPU whole and drops only what ties tasks to one node (a gang's
GPUs on one node, each node's CPU and host memory); where those are slack, as when the fleet's
CPU is far from full, its optimum is what the node-pattern LP's rounding loses in its last,
fractional nodes (on the size ladder's 10,000 tasks with priorities, the dive's plan places 1,347
tasks of the middle tier, this one the 1,385 the LP allows). CP-SAT solves it by stages as the
node-pattern LP is solved: the number of placed tasks of each priority tier from the highest, each
held while the next is maximized, and the last tier (or the only one) by its drop penalties.

**Back to nodes**, class by class. Each placed gang takes :math:`k_i` GPUs whose configuration
holds its kind; each GPU left takes one configuration; the other slots of a GPU are filled with
tasks of their kinds, either heavy and light ones (by CPU and host memory over the node's) in turn,
so that GPUs come out alike, or the heaviest left, so that GPUs of one make-up pair on a node (each
way is tried, and the one that places more kept); a GPU left empty takes no node's GPU. These units
go onto the nodes: gangs largest first (gang sizes that divide the node's GPUs then fit exactly),
then single GPUs heaviest first, each onto the node with the most CPU and host memory left among
those that keep, for each of their other free GPUs, the CPU and host memory of the lightest unit
still to come (so no GPU is left on a node out of CPU). The nodes' patterns are laid like the
node-pattern plan's (`pattern_plan.lay_patterns`), and what is left is offered anywhere.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gpuplan.bounds.node_patterns import GAIN_SCALE, NODE_SCALE, NodePatterns
from gpuplan.heuristics.fleet_greedy import FleetState
from gpuplan.heuristics.pattern_plan import lay_patterns
from gpuplan.interrupt import past, solve_cpsat
from gpuplan.program.fleet import FleetProgram

_EPS = 1e-9
#: Seconds per task kept from the class program for splitting it into nodes (both ways) and laying
#: the tasks (measured: about 7.4 s for 100,000 tasks on 10,000 nodes), at most `LAY_SHARE` of the
#: time left.
LAY_S_PER_TASK = 1e-4
LAY_SHARE = 0.8


@dataclass
class _Unit:
    """GPUs that go onto one node together: a gang's, or a single GPU's, with the tasks they hold."""

    gpus: int
    cpu: float
    ram: float
    items: dict[int, int] = field(default_factory=dict)  # shape -> tasks
    configs: dict[int, int] = field(default_factory=dict)  # configuration -> GPUs


def config_plan(
    p: FleetProgram, pat: NodePatterns, deadline: float | None = None, workers: int = 1
) -> FleetState | None:
    """The plan of the module docstring; None when the class program finds nothing in time. The
    class program stops early enough to leave the split and the laying `LAY_S_PER_TASK` a task."""
    cut = None
    if deadline is not None:
        cut = deadline - min(LAY_S_PER_TASK * p.n_tasks, LAY_SHARE * max(0.0, deadline - time.monotonic()))
    solved = _class_program(p, pat, cut, workers)
    if solved is None:
        return None
    patterns: list[tuple[int, np.ndarray, np.ndarray, int]] = []
    tier = _tier_of_shape(pat)
    levels = int(tier.max(initial=0)) + 1
    for b, (x, u) in enumerate(solved):
        best: tuple[tuple[float, ...], list[tuple[int, np.ndarray, np.ndarray, int]]] | None = None
        for mixed in (True, False):
            if best is not None and deadline is not None and past(deadline):
                break
            split = _split(p, pat, b, x, u, mixed, deadline)
            held = sum((xn for _, xn, _, _ in split), np.zeros(tier.size, dtype=np.int64))
            counts = np.bincount(tier, weights=held, minlength=levels)
            key = (*counts[:-1], float(pat.master.sh.value @ (held * (tier == levels - 1))))
            if best is None or key > best[0]:
                best = (key, split)
        assert best is not None
        patterns.extend(best[1])
    return lay_patterns(p, pat, patterns, deadline)


def _tier_of_shape(pat: NodePatterns) -> np.ndarray:
    """int64 [I]: each shape's priority tier, 0 the highest (all 0 without tiers)."""
    if pat.tier_of_shape is not None:
        return pat.tier_of_shape
    return np.zeros(pat.master.sh.count.size, dtype=np.int64)


def _class_facts(p: FleetProgram, pat: NodePatterns, b: int) -> tuple[int, float, float]:
    """(usable GPUs per node, CPU, host memory) of node class b."""
    n = int(np.flatnonzero(pat.node_class == b)[0])
    gpus = int(np.count_nonzero((p.gpu_node == n) & p.gpu_ok & ~p.host))
    return gpus, float(p.node_cpu[n]), float(p.node_ram[n])


def _class_program(
    p: FleetProgram, pat: NodePatterns, deadline: float | None, workers: int
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per node class, (x [I], u [J of b]) of the class program (module docstring), by stages."""
    from ortools.sat.python import cp_model

    m, sh = pat.master, pat.master.sh
    model = cp_model.CpModel()
    xs: list[list[cp_model.IntVar]] = []
    us: list[list[cp_model.IntVar]] = []
    of_shape: dict[int, list[cp_model.IntVar]] = {}
    for b, pricing in enumerate(m.prices):
        gpus, cpu, ram = _class_facts(p, pat, b)
        nodes = int(m.m_b[b])
        x = [model.new_int_var(0, int(sh.count[i]), "") for i in pricing.items]
        u = [model.new_int_var(0, nodes * gpus, "") for _ in range(pricing.configs.shape[0])]
        model.add(sum(u) <= nodes * gpus)
        for k in np.unique(pricing.kind):
            sel = np.flatnonzero(pricing.kind == k)
            js = np.flatnonzero(pricing.configs[:, k])
            model.add(
                cp_model.LinearExpr.weighted_sum(
                    [x[s] for s in sel], [int(sh.gang[pricing.items[s]]) for s in sel]
                )
                <= cp_model.LinearExpr.weighted_sum(
                    [u[j] for j in js], [int(pricing.configs[j, k]) for j in js]
                )
            )
        for need, limit in ((sh.cpu[pricing.items], cpu), (sh.ram[pricing.items], ram)):
            if math.isfinite(limit) and need.any():
                a = np.ceil(need * NODE_SCALE - _EPS).astype(np.int64)
                model.add(
                    cp_model.LinearExpr.weighted_sum(x, [int(v) for v in a])
                    <= nodes * math.floor(limit * NODE_SCALE + _EPS)
                )
        for i, var in zip(pricing.items, x, strict=True):
            of_shape.setdefault(int(i), []).append(var)
        xs.append(x)
        us.append(u)
    for i, vs in of_shape.items():
        model.add(sum(vs) <= int(sh.count[i]))
    tier = _tier_of_shape(pat)
    stages = int(tier.max(initial=0)) + 1
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = max(1, workers)
    values = [
        (np.zeros(len(x), dtype=np.int64), np.zeros(len(u), dtype=np.int64))
        for x, u in zip(xs, us, strict=True)
    ]
    found = not of_shape  # nothing fits anywhere: the plan places nothing
    for j in range(stages):
        members = [(i, v) for i, vs in of_shape.items() if tier[i] == j for v in vs]
        if not members:
            continue
        if j < stages - 1:  # the tier's count, as the node-pattern LP's stages
            goal = cp_model.LinearExpr.sum([v for _, v in members])
        else:
            top = max(float(sh.value[[i for i, _ in members]].max()), _EPS)
            w = [max(0, math.ceil(sh.value[i] / top * GAIN_SCALE - _EPS)) for i, _ in members]
            goal = cp_model.LinearExpr.weighted_sum([v for _, v in members], w)
        model.maximize(goal)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        if left is not None:
            solver.parameters.max_time_in_seconds = max(0.05, left / (stages - j + 1))
        status = solve_cpsat(solver, model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        found = True
        model.clear_hints()
        for var in (v for group in (*xs, *us) for v in group):
            model.add_hint(var, solver.value(var))
        if j < stages - 1:
            model.add(goal >= int(solver.value(goal)))
        values = [
            (
                np.array([solver.value(v) for v in x], dtype=np.int64),
                np.array([solver.value(v) for v in u], dtype=np.int64),
            )
            for x, u in zip(xs, us, strict=True)
        ]
    if not found:
        return None
    out = []
    for b, (xv, uv) in enumerate(values):
        x = np.zeros(sh.count.size, dtype=np.int64)
        x[m.prices[b].items] = xv
        out.append((x, uv))
    return out


def _split(
    p: FleetProgram,
    pat: NodePatterns,
    b: int,
    x: np.ndarray,
    u: np.ndarray,
    mixed: bool,
    deadline: float | None = None,
) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """Node patterns (b, x [I], u [J], 1) of class b from its class solution (module docstring,
    'back to nodes'); tasks whose unit finds no node, or none before `deadline` (or a stop
    request), are left to the fill. `mixed`: a GPU's slots
    take heavy and light tasks in turn (GPUs alike), else the heaviest left (GPUs of one make-up,
    which pair whole with whole on a node)."""
    sh, pricing = pat.master.sh, pat.master.prices[b]
    gpus, cpu_cap, ram_cap = _class_facts(p, pat, b)
    nodes = int(pat.master.m_b[b])

    def weight(i: int) -> float:
        return float(_frac(sh.cpu[i], cpu_cap) + _frac(sh.ram[i], ram_cap))

    kind_of = {int(i): int(k) for i, k in zip(pricing.items, pricing.kind, strict=True)}
    left = u.copy()
    # Single-GPU tasks by kind, heaviest first; a GPU's slots take from the front or the back.
    heavy_first: dict[int, list[int]] = {}
    for i in pricing.items:
        if sh.gang[i] == 1 and x[i] > 0:
            heavy_first.setdefault(kind_of[int(i)], []).extend([int(i)] * int(x[i]))
    by_kind: dict[int, deque[int]] = {}
    mean: dict[int, float] = {}
    for k, lst in heavy_first.items():
        lst.sort(key=lambda i: -weight(i))
        by_kind[k] = deque(lst)
        mean[k] = float(np.mean([weight(i) for i in lst]))

    def fill(unit: _Unit, j: int, used: dict[int, int]) -> None:
        """Fill configuration j's slots (less `used` of each kind) with single-GPU tasks."""
        done, load = 0, 0.0
        for k in np.flatnonzero(pricing.configs[j]):
            lst = by_kind.get(int(k))
            for _ in range(int(pricing.configs[j, k]) - used.get(int(k), 0)):
                if not lst:
                    break
                i = lst.popleft() if not mixed or load <= mean[int(k)] * done else lst.pop()
                unit.items[i] = unit.items.get(i, 0) + 1
                unit.cpu += float(sh.cpu[i])
                unit.ram += float(sh.ram[i])
                load += weight(i)
                done += 1

    units: list[_Unit] = []
    gangs = [int(i) for i in pricing.items if sh.gang[i] > 1 and x[i] > 0]
    for i in sorted(gangs, key=lambda i: -int(sh.gang[i])):
        k, g = kind_of[i], int(sh.gang[i])
        js = np.flatnonzero(pricing.configs[:, k])
        js = js[np.argsort(pricing.configs[js].sum(axis=1), kind="stable")]  # the fewest other slots first
        for _ in range(int(x[i])):
            if int(left[js].sum()) < g:
                break
            unit = _Unit(g, float(sh.cpu[i]), float(sh.ram[i]), {i: 1})
            need = g
            for j in js:
                take = min(need, int(left[j]))
                for _ in range(take):
                    left[j] -= 1
                    unit.configs[int(j)] = unit.configs.get(int(j), 0) + 1
                    fill(unit, int(j), {k: 1})
                need -= take
                if not need:
                    break
            units.append(unit)
    for j in np.flatnonzero(left):
        for _ in range(int(left[j])):
            unit = _Unit(1, 0.0, 0.0, {}, {int(j): 1})
            fill(unit, int(j), {})
            if unit.items:  # a GPU the class program set up but left empty takes no node's GPU
                units.append(unit)
    units.sort(key=lambda un: (-un.gpus, -(_frac(un.cpu, cpu_cap) + _frac(un.ram, ram_cap))))

    slots = np.full(nodes, gpus, dtype=np.int64)
    cpu = np.full(nodes, cpu_cap)
    ram = np.full(nodes, ram_cap)
    node_x = np.zeros((nodes, sh.count.size), dtype=np.int64)
    node_u = np.zeros((nodes, pricing.configs.shape[0]), dtype=np.int64)
    # The lightest unit still to come, per resource: after unit q, at q + 1 (none after the last).
    light_cpu, light_ram = np.zeros(len(units) + 1), np.zeros(len(units) + 1)
    if units:
        light_cpu[:-1] = np.minimum.accumulate(np.array([un.cpu for un in units])[::-1])[::-1]
        light_ram[:-1] = np.minimum.accumulate(np.array([un.ram for un in units])[::-1])[::-1]
    for q, un in enumerate(units):
        if deadline is not None and q % 256 == 0 and past(deadline):
            break
        ok = (slots >= un.gpus) & (cpu >= un.cpu - _EPS) & (ram >= un.ram - _EPS)
        if un.gpus == 1:
            keep = (
                ok
                & (cpu - un.cpu >= (slots - 1) * light_cpu[q + 1] - _EPS)
                & (ram - un.ram >= (slots - 1) * light_ram[q + 1] - _EPS)
            )
            if keep.any():
                ok = keep
        if not ok.any():
            continue
        cand = np.flatnonzero(ok)
        n = int(cand[np.argmax(_frac(cpu[cand], cpu_cap) + _frac(ram[cand], ram_cap))])
        slots[n] -= un.gpus
        cpu[n] -= un.cpu
        ram[n] -= un.ram
        for i, c in un.items.items():
            node_x[n, i] += c
        for j, c in un.configs.items():
            node_u[n, j] += c
    return [(b, node_x[n], node_u[n], 1) for n in range(nodes) if node_u[n].any()]


def _frac(used: np.ndarray | float, cap: float) -> np.ndarray | float:
    """`used` over the capacity `cap`; 0 when it is unlimited."""
    if math.isfinite(cap) and cap > 0:
        return used / cap
    return np.zeros_like(used) if isinstance(used, np.ndarray) else 0.0


__all__ = ["config_plan"]

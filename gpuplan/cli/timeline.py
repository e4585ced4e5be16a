"""A scheduled plan as text: one bar per GPU (and per node for CPU-only tasks) over the plan's span.

`gpuplan show` prints it after the summary (60 columns), so the order on each GPU reads at a glance.
Tasks that share a GPU at once take one lane each (extra rows under the GPU's name); 20 columns:

    timeline   0 .. 2 h, 20 columns of 0.1 h (. idle)
    g0         |AAAAAAAAAAAAAAAAAAAA|
               |BBBBBBBBBBCCCCCCCCCC|
    legend     A x [0-2 h]   B y [0-1 h]   C z [1-2 h]
"""

from __future__ import annotations

import math

from gpuplan.models import Assignment, Plan

#: One letter or digit per task, in order of planned start; tasks beyond them show as MORE.
SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
IDLE, MORE = ".", "#"
#: Hours by which two planned intervals may touch and still count as one after the other.
EPS_H = 1e-9


def _lanes(tasks: list[Assignment]) -> list[list[Assignment]]:
    """Tasks of one GPU (by planned start) in lanes, none overlapping another of its lane: each task
    goes in the first lane free at its start (as few lanes as tasks ever run there at once)."""
    lanes: list[list[Assignment]] = []
    for a in tasks:
        lane = next((ln for ln in lanes if (ln[-1].end_h or 0.0) <= (a.start_h or 0.0) + EPS_H), None)
        if lane is None:
            lanes.append([a])
        else:
            lane.append(a)
    return lanes


def _bar(lane: list[Assignment], symbol: dict[str, str], span: float, width: int) -> str:
    """A lane as `width` columns: each column shows the task running at its middle; a task shorter
    than a column still shows, in the column of its own middle."""
    row = [IDLE] * width
    for a in lane:
        start, end = a.start_h or 0.0, a.end_h or 0.0
        first = max(0, math.ceil(start / span * width - 0.5 - EPS_H))
        last = min(width - 1, math.ceil(end / span * width - 0.5 - EPS_H) - 1)
        if last < first:  # shorter than a column (or, in a plan read from a file, ending before it starts)
            first = last = min(width - 1, max(0, int((start + end) / 2 / span * width)))
        for c in range(first, last + 1):
            row[c] = symbol[a.task]
    return "".join(row)


def timeline(plan: Plan, width: int = 60, legend_width: int = 100) -> str | None:
    """The plan's timeline, `width` columns from time zero to the last end; None for a plan without
    planned times (unscheduled), which `show` leaves as it was."""
    timed = [a for a in plan.assignments if a.start_h is not None and a.end_h is not None]
    if not timed:
        return None
    span = max(a.end_h or 0.0 for a in timed) or 1.0
    order = sorted(timed, key=lambda a: (a.start_h or 0.0, a.task))
    symbol = {a.task: SYMBOLS[k] if k < len(SYMBOLS) else MORE for k, a in enumerate(order)}
    on: dict[str, list[Assignment]] = {}
    for a in order:
        for name in a.gpus or [f"{a.node or '-'} (CPU)"]:
            on.setdefault(name, []).append(a)
    known = [u.gpu for u in plan.gpus if u.gpu in on]
    names = known + [n for n in on if n not in known]
    pad = max(10, min(24, max(len(n) for n in names)))
    lines = [f"{'timeline':<{pad}} 0 .. {span:g} h, {width} columns of {span / width:.3g} h ({IDLE} idle)"]
    for name in names:
        for k, lane in enumerate(_lanes(on[name])):
            lines.append(f"{name if k == 0 else '':<{pad}} |{_bar(lane, symbol, span, width)}|")
    entries = [f"{symbol[a.task]} {a.task} [{a.start_h:g}-{a.end_h:g} h]" for a in order[: len(SYMBOLS)]]
    if len(order) > len(SYMBOLS):
        entries.append(f"{MORE} {len(order) - len(SYMBOLS)} more tasks")
    label, line = "legend", ""
    for entry in entries:
        if line and pad + 1 + len(line) + 3 + len(entry) > legend_width:
            lines.append(f"{label:<{pad}} {line}")
            label, line = "", ""
        line = f"{line}   {entry}" if line else entry
    lines.append(f"{label:<{pad}} {line}")
    return "\n".join(lines)

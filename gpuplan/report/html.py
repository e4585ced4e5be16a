"""A plan (and, with a run, what happened) as one self-contained HTML page.

Plain HTML, inline CSS and inline SVG, and one short inline script that only marks the page as
rendered: no server, no network, no external file, so the page opens offline. Large fleets stay
compact: the utilization view draws one small cell per GPU, the timeline draws at most `MAX_ROWS`
GPUs (the busiest), and long tables are cut at `MAX_TABLE_ROWS` with the cut said on the page.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gpuplan.history import AttemptRecord, RunJournal
from gpuplan.models import Plan

MAX_ROWS = 120
MAX_TABLE_ROWS = 400
#: Event kinds shown as faults and migrations.
FAULT_KINDS = ("fault", "stop", "replan", "move", "recover", "retry", "failed", "blocked", "wait", "xid")
BAD_KINDS = ("fault", "failed", "blocked")
STATE_COLOR = {"succeeded": "#2e7d32", "failed": "#c62828", "lost": "#6a1b9a", "stopped": "#ef6c00"}

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
.sub{color:#667;font-size:12px}.note{color:#556;font-size:12px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:12px;margin:4px 0}
th,td{padding:3px 8px;border-bottom:1px solid #eef;text-align:left}
th{background:#f4f6fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #dde;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:18px}.card span{color:#667;font-size:12px}
.ok{color:#2e7d32}.bad{color:#c62828}.warn{color:#ef6c00}svg{display:block;max-width:100%}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:8px;margin-right:4px}
"""

#: Marks the page once loaded: how many sections it has and when the load ended (ms since navigation).
SCRIPT = (
    "addEventListener('load',function(){var d=document.documentElement.dataset;"
    "d.rendered=String(document.querySelectorAll('section').length);"
    "d.loadMs=String(Math.round(performance.now()))});"
)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:,.{digits}g}"


def _util_color(u: float) -> str:
    """Light grey at 0, through blue, to dark blue at 1."""
    u = min(1.0, max(0.0, u))
    return f"hsl(215,{int(20 + 60 * u)}%,{int(93 - 58 * u)}%)"


@dataclass
class _Run:
    """The run's side of the page: attempts, events and per-task figures."""

    journal: RunJournal
    records: list[AttemptRecord]
    by_task: dict[str, list[AttemptRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.records:
            self.by_task.setdefault(r.task, []).append(r)


def _card(label: str, value: str, cls: str = "") -> str:
    return f'<div class="card"><b class="{cls}">{value}</b><span>{_e(label)}</span></div>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        out.extend(f'<td class="n">{c}</td>' if k in numeric else f"<td>{c}</td>" for k, c in enumerate(row))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _plan_energy_kwh(plan: Plan, problem: dict[str, Any] | None) -> float | None:
    """Planned energy: Σ duration x share x GPUs x the type's power (needs the problem's types)."""
    if problem is None:
        return None
    power = {t["name"]: float(t.get("power_w", 0.0)) for t in problem.get("gpu_types", [])}
    share = {t["id"]: float(t.get("gpu_share", 1.0)) for t in problem.get("tasks", [])}
    total = 0.0
    for a in plan.assignments:
        if a.duration_h is not None and a.gpu_type is not None:
            total += a.duration_h * share.get(a.task, 1.0) * len(a.gpus) * power.get(a.gpu_type, 0.0)
    return total / 1000.0


def _summary(plan: Plan, problem: dict[str, Any] | None, run: _Run | None) -> str:
    cost = sum(a.cost for a in plan.assignments)
    ends = [a.end_h for a in plan.assignments if a.end_h is not None]
    status_cls = "ok" if plan.status.has_solution else "bad"
    cards = [
        _card("status", _e(plan.status.value), status_cls),
        _card("objective", _num(plan.objective)),
        _card("bound", _num(plan.bound)),
        _card("gap", "—" if plan.gap is None else f"{100 * plan.gap:.2f}%"),
        _card("cost (planned)", _num(cost)),
        _card("energy (planned, kWh)", _num(_plan_energy_kwh(plan, problem))),
        _card("tasks placed", f"{len(plan.assignments):,}"),
        _card("left out", f"{len(plan.unassigned):,}", "warn" if plan.unassigned else ""),
    ]
    if ends:
        cards.append(_card("makespan (planned, h)", _num(max(ends))))
    out = [f'<section id="summary"><h2>Summary</h2><div class="cards">{"".join(cards)}</div>']
    out.append(
        f'<p class="note">solver {_e(plan.solver)} (asked: {_e(plan.solver_requested)}), '
        f"{plan.wall_time_s:.2f} s{'; ' + _e(plan.message) if plan.message else ''}</p>"
    )
    if run is not None:
        recs = run.records
        done = [r for r in recs if r.state == "succeeded"]
        energy = [r.energy_j for r in recs if r.energy_j is not None]
        states = Counter(t.get("state") for t in run.journal.tasks)
        run_cards = [
            _card("run", _e(run.journal.meta.get("state", "?"))),
            _card("tasks done", f"{states.get('done', 0):,}", "ok"),
            _card("tasks failed", f"{states.get('failed', 0):,}", "bad" if states.get("failed") else ""),
            _card("attempts", f"{len(recs):,}"),
            _card("cost (measured)", _num(sum(r.cost or 0.0 for r in recs))),
            _card("energy (measured, kWh)", _num(sum(energy) / 3.6e6 if energy else None)),
        ]
        if done:
            run_cards.append(_card("makespan (measured, h)", _num(max(r.end_h or 0.0 for r in done))))
        out.append(f'<h2>Run</h2><div class="cards">{"".join(run_cards)}</div>')
        out.append(
            f'<p class="note">state directory {_e(run.journal.state_dir)}; hours are wall time / '
            f"{run.journal.hour_s:g} s (the run's hour scale); measured energy integrates the sampled GPU "
            "power over each attempt's wall time (a time-compressed run uses less than planned).</p>"
        )
    out.append("</section>")
    return "".join(out)


def _calibration(plan: Plan) -> str:
    c = plan.calibration
    if c is None:
        return ""
    rows = [
        [
            _e(v.gpu_type),
            _e(v.group or "—"),
            _e(v.quantity),
            _num(v.value),
            _num(v.declared),
            f'<span class="{"ok" if v.source == "calibration" else ""}">{_e(v.source)}</span>',
            str(v.observations),
            str(v.tasks),
            _e(v.note),
        ]
        for v in c.values[:MAX_TABLE_ROWS]
    ]
    cut = len(c.values) - len(rows)
    return (
        '<section id="calibration"><h2>Where the speeds and durations came from</h2>'
        f'<p class="note">calibration {_e(c.file or "")}: values with at least {c.min_observations} '
        f"observations are measured; tasks calibrated {c.tasks_calibrated:,}, declared {c.tasks_declared:,}"
        f"{f'; {cut} more values not shown' if cut else ''}.</p>"
        + _table(
            ["GPU type", "group", "quantity", "used", "declared", "source", "obs.", "tasks", "note"],
            rows,
            {3, 4, 6, 7},
        )
        + "</section>"
    )


def _utilization(plan: Plan, run: _Run | None) -> str:
    if not plan.gpus:
        return ""
    busy: dict[str, float] = defaultdict(float)
    span = 0.0
    if run is not None:
        for r in run.records:
            if r.duration_h is not None:
                for g in r.gpus.split(","):
                    busy[g] += r.duration_h
                span = max(span, r.end_h or 0.0)
    by_type: dict[str, list[float]] = defaultdict(list)
    type_of = {g: a.gpu_type or "?" for a in plan.assignments for g in a.gpus}
    for u in plan.gpus:
        by_type[type_of.get(u.gpu, "idle")].append(u.utilization)
    hist = [0] * 10
    for u in plan.gpus:
        hist[min(9, int(u.utilization * 10))] += 1
    top = max(hist) or 1
    bars = "".join(
        f'<rect x="{40 + k * 56}" y="{110 - 100 * h / top:.1f}" width="50" height="{100 * h / top:.1f}" '
        f'fill="{_util_color((k + 0.5) / 10)}"><title>{10 * k}-{10 * (k + 1)}%: {h} GPUs</title></rect>'
        f'<text x="{65 + k * 56}" y="126" font-size="10" text-anchor="middle">{10 * k}-{10 * k + 10}%</text>'
        f'<text x="{65 + k * 56}" y="{106 - 100 * h / top:.1f}" font-size="10" '
        f'text-anchor="middle">{h}</text>'
        for k, h in enumerate(hist)
    )
    hist_svg = '<svg id="util-hist" width="620" height="132" role="img" aria-label="GPUs by utilization">'
    hist_svg += f"{bars}</svg>"
    cell, cols = 9, 100
    n = len(plan.gpus)
    rows_n = math.ceil(n / cols)
    cells = []
    for k, u in enumerate(plan.gpus):
        x, y = (k % cols) * cell, (k // cols) * cell
        extra = f", ran {busy[u.gpu]:.3g} h" if run is not None else ""
        cells.append(
            f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
            f'fill="{_util_color(u.utilization)}">'
            f"<title>{_e(u.gpu)}: {100 * u.utilization:.0f}%, {u.tasks} tasks{extra}</title></rect>"
        )
    grid = (
        f'<svg id="util-grid" width="{cols * cell}" height="{rows_n * cell}" role="img" '
        f'aria-label="utilization per GPU">{"".join(cells)}</svg>'
    )
    type_rows = [
        [_e(t), f"{len(v):,}", f"{100 * sum(v) / len(v):.1f}%", f"{100 * max(v):.0f}%"]
        for t, v in sorted(by_type.items())
    ]
    measured = ""
    if run is not None and span > 0:
        mean_busy = sum(busy.get(u.gpu, 0.0) for u in plan.gpus) / (n * span)
        measured = (
            f" Measured: the GPUs were busy {100 * mean_busy:.1f}% of the run's {span:.3g} h on average."
        )
    return (
        '<section id="utilization"><h2>Utilization per GPU</h2>'
        f'<p class="note">{n:,} GPUs, one cell each (plan order; hover for the GPU). Planned utilization '
        f"is the largest used / capacity ratio over a GPU's resources.{measured}</p>"
        + hist_svg
        + grid
        + _table(["GPU type (placed tasks)", "GPUs", "mean", "max"], type_rows, {1, 2, 3})
        + (_measured_gpus(plan, run) if run is not None else "")
        + "</section>"
    )


def _measured_gpus(plan: Plan, run: _Run) -> str:
    """Per GPU, what the run measured: attempts, task-hours, sampled utilization (weighted by hours)
    and energy; the GPUs with the most task-hours first."""
    stats: dict[str, list[float]] = {}  # gpu -> [attempts, hours, util x hours, hours with util, joules]
    for r in run.records:
        if r.duration_h is None or not r.gpus:
            continue
        for g in r.gpus.split(","):
            row = stats.setdefault(g, [0, 0.0, 0.0, 0.0, 0.0])
            row[0] += 1
            row[1] += r.duration_h
            if r.utilization_mean is not None:
                row[2] += r.utilization_mean * r.duration_h
                row[3] += r.duration_h
            if r.energy_j is not None:
                row[4] += r.energy_j / len(r.gpus.split(","))
    planned = {u.gpu: u.utilization for u in plan.gpus}
    order = sorted(stats, key=lambda g: -stats[g][1])
    rows = [
        [
            _e(g),
            "—" if g not in planned else f"{100 * planned[g]:.0f}%",
            f"{int(stats[g][0])}",
            _num(stats[g][1]),
            "—" if not stats[g][3] else f"{stats[g][2] / stats[g][3]:.1f}%",
            _num(stats[g][4] / 3.6e6),
        ]
        for g in order[:MAX_TABLE_ROWS]
    ]
    cut = len(order) - len(rows)
    return (
        '<p class="note">Measured per GPU (task-hours sum the attempts on it, so shared GPUs can pass the'
        f" run's length; utilization is the samples' mean over the attempts)"
        f"{f'; the {cut:,} GPUs with the fewest task-hours are not listed' if cut else ''}.</p>"
        + _table(
            ["GPU", "planned", "attempts", "task-hours", "sampled utilization", "energy kWh"],
            rows,
            {1, 2, 3, 4, 5},
        )
    )


def _ticks(t_max: float) -> list[float]:
    raw = t_max / 8 if t_max > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [k * step for k in range(int(t_max / step) + 1)]


def _timeline(plan: Plan, run: _Run | None) -> str:
    if not plan.assignments:
        return ""
    scheduled = any(a.start_h is not None for a in plan.assignments)
    lanes: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for a in plan.assignments:
        start = a.start_h if a.start_h is not None else 0.0
        end = a.end_h if a.end_h is not None else start + (a.duration_h or 0.0)
        for g in a.gpus or [f"{a.node} (CPU)"]:
            lanes[g].append((start, end, a.task))
    actual: dict[str, list[tuple[float, float, str, str]]] = defaultdict(list)
    if run is not None:
        for r in run.records:
            if r.start_h is not None and r.end_h is not None:
                for g in r.gpus.split(",") if r.gpus else [f"{r.node} (CPU)"]:
                    actual[g].append((r.start_h, r.end_h, r.task, r.state))
    for g in actual:
        lanes.setdefault(g, [])  # a GPU the run moved tasks to
    load = {
        g: sum(e - s for s, e, _ in v) + sum(e - s for s, e, _, _ in actual.get(g, []))
        for g, v in lanes.items()
    }
    shown = sorted(lanes, key=lambda g: -load[g])[:MAX_ROWS]
    order = {g: k for k, g in enumerate(lanes)}
    shown.sort(key=lambda g: order[g])
    t_max = max(
        [e for g in shown for _, e, _ in lanes[g]]
        + [e for g in shown for _, e, _, _ in actual.get(g, [])]
        + [1e-9]
    )
    label_w, plot_w, row_h = 150, 840, 18 if run is not None else 12
    scale = plot_w / t_max
    height = 24 + row_h * len(shown)
    parts = [
        f'<svg id="gantt" width="{label_w + plot_w + 10}" height="{height}" role="img" aria-label="timeline">'
    ]
    for t in _ticks(t_max):
        x = label_w + t * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{height}" stroke="#e3e6ee"/>'
            f'<text x="{x:.1f}" y="10" font-size="10" text-anchor="middle">{t:g} h</text>'
        )
    for k, g in enumerate(shown):
        y = 18 + k * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 9}" font-size="10" text-anchor="end">{_e(g[:24])}</text>'
        )
        plan_h = 8 if run is None else 7
        for s, e, task in lanes[g]:
            parts.append(
                f'<rect class="planned" x="{label_w + s * scale:.1f}" y="{y}" '
                f'width="{max(1.0, (e - s) * scale):.1f}" '
                f'height="{plan_h}" fill="#90a4d4" fill-opacity="{0.9 if scheduled else 0.5}" stroke="#fff" '
                f'stroke-width="0.5"><title>{_e(task)} planned {s:.3g}-{e:.3g} h</title></rect>'
            )
        for s, e, task, state in actual.get(g, []):
            parts.append(
                f'<rect class="actual" x="{label_w + s * scale:.1f}" y="{y + 8}" '
                f'width="{max(1.0, (e - s) * scale):.1f}" '
                f'height="7" fill="{STATE_COLOR.get(state, "#888")}" stroke="#fff" stroke-width="0.5">'
                f"<title>{_e(task)} {_e(state)} {s:.3g}-{e:.3g} h</title></rect>"
            )
    parts.append("</svg>")
    cut = len(lanes) - len(shown)
    legend = '<div class="legend"><span><i style="background:#90a4d4"></i>planned</span>'
    if run is not None:
        legend += "".join(
            f'<span><i style="background:{c}"></i>actual: {s}</span>' for s, c in STATE_COLOR.items()
        )
    legend += "</div>"
    note = (
        "Planned start and end of each task per GPU"
        if scheduled
        else "The plan has no times: every task starts at 0 and runs alongside the others on its GPU"
        " (bars overlap)"
    )
    if cut:
        note += (
            f"; the {len(shown)} busiest of {len(lanes):,} GPUs are drawn, the other {cut:,} are in the"
            " utilization view above"
        )
    return (
        f'<section id="timeline"><h2>Timeline</h2><p class="note">{_e(note)}.</p>{legend}'
        f"{''.join(parts)}</section>"
    )


def _versus(plan: Plan, run: _Run) -> str:
    rows_data = []
    for a in plan.assignments:
        recs = run.by_task.get(a.task, [])
        last = next((r for r in reversed(recs) if r.state == "succeeded"), recs[-1] if recs else None)
        first = next((r for r in recs if r.start_h is not None), None)
        planned = a.duration_h
        act = last.duration_h if last is not None else None
        ratio = act / planned if act is not None and planned else None
        rows_data.append((a, recs, last, first, planned, act, ratio))
    rows_data.sort(key=lambda row: -abs(math.log(row[6])) if row[6] else 0.0)
    shown = rows_data[:MAX_TABLE_ROWS]
    rows = []
    for a, recs, last, first, planned, act, ratio in shown:
        state = last.state if last else "not run"
        cls = "ok" if state == "succeeded" else "bad"
        r_cls = "" if ratio is None or abs(ratio - 1) < 0.1 else "warn"
        rows.append(
            [
                _e(a.task),
                _e(last.group if last and last.group else "—"),
                _e(a.gpu_type or "—"),
                _num(a.start_h),
                _num(first.start_h if first else None),
                _num(planned),
                _num(act),
                f'<span class="{r_cls}">{_num(ratio, 3)}</span>',
                str(len(recs)),
                f'<span class="{cls}">{_e(state)}</span>',
                _e(last.gpus if last else ""),
            ]
        )
    ratios = sorted(r[6] for r in rows_data if r[6])
    med = ratios[len(ratios) // 2] if ratios else None
    cut = len(rows_data) - len(shown)
    return (
        '<section id="versus"><h2>Planned against actual, per task</h2>'
        f'<p class="note">Sorted by how far the measured duration was from the planned one; median ratio '
        f"actual / planned {_num(med, 3)}.{f' The {cut:,} closest tasks are not listed.' if cut else ''}</p>"
        + _table(
            [
                "task",
                "group",
                "type",
                "planned start h",
                "actual start h",
                "planned h",
                "actual h",
                "actual / planned",
                "attempts",
                "state",
                "GPUs (last)",
            ],
            rows,
            {3, 4, 5, 6, 7, 8},
        )
        + "</section>"
    )


def _faults(run: _Run) -> str:
    epoch, hour_s = run.journal.epoch, run.journal.hour_s
    evs = [e for e in run.journal.events if e.get("kind") in FAULT_KINDS]
    counts = Counter(e["kind"] for e in evs)
    shown = evs[:MAX_TABLE_ROWS]
    rows = [
        [
            _num((e["t"] - epoch) / hour_s, 4),
            f'<span class="{"bad" if e["kind"] in BAD_KINDS else ""}">{_e(e["kind"])}</span>',
            _e(e.get("gpu", "")),
            _e(e.get("task", "")),
            _e(e.get("reason", "")),
        ]
        for e in shown
    ]
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    cut = len(evs) - len(shown)
    body = (
        _table(["h", "event", "GPU", "task", "reason"], rows, {0})
        if rows
        else "<p>No faults, moves or retries.</p>"
    )
    return (
        '<section id="faults"><h2>Faults and migrations</h2>'
        f'<p class="note">{_e(summary)}.{f" The last {cut:,} events are not listed." if cut else ""}</p>'
        + body
        + "</section>"
    )


def _left_out(plan: Plan) -> str:
    by_reason = Counter(u.reason for u in plan.unassigned)
    shown = plan.unassigned[:MAX_TABLE_ROWS]
    if not plan.unassigned:
        return '<section id="left-out"><h2>Left-out tasks</h2><p>Every task is placed.</p></section>'
    reasons = _table(["reason", "tasks"], [[_e(r), f"{n:,}"] for r, n in by_reason.most_common(50)], {1})
    tasks = _table(["task", "reason"], [[_e(u.task), _e(u.reason)] for u in shown])
    cut = len(plan.unassigned) - len(shown)
    more = f"The first {len(shown):,} listed; {cut:,} more." if cut else ""
    return (
        f'<section id="left-out"><h2>Left-out tasks ({len(plan.unassigned):,})</h2>'
        f'{reasons}<p class="note">{more}</p>{tasks}'
        "</section>"
    )


def render_report(
    plan: Plan,
    *,
    run: RunJournal | None = None,
    records: list[AttemptRecord] | None = None,
    problem: dict[str, Any] | None = None,
    title: str = "gpuplan report",
) -> str:
    """The page: summary, calibration sources, utilization, timeline, planned against actual (with a
    run), faults and migrations (with a run), left-out tasks. The problem (as JSON; the run's own when
    a run is given) adds the planned energy."""
    if problem is None and run is not None:
        problem = run.meta.get("problem")
    r = _Run(run, records or []) if run is not None else None
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<div class="sub">generated {stamp} by gpuplan; plan schema {_e(plan.schema_version)}</div>',
        _summary(plan, problem, r),
        _calibration(plan),
        _utilization(plan, r),
        _timeline(plan, r),
    ]
    if r is not None:
        body += [_versus(plan, r), _faults(r)]
    body.append(_left_out(plan))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f"<script>{SCRIPT}</script></body></html>\n"
    )


__all__ = ["MAX_ROWS", "MAX_TABLE_ROWS", "render_report"]

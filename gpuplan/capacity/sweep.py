"""Sweeps: cost against the horizon and against price scenarios, to CSV rows and a PNG plot.

Horizon sweep: the workload is re-planned with horizon H' and every deadline scaled by H'/H (the
same relative urgency); work is unchanged. Price sweep: each offer's price is scaled by each factor
in turn, the others kept, which traces where the chosen mix switches. Every point is a full
`plan_capacity` run (sized and proven), so each row says whether it was proven.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuplan.capacity.models import CapacityReport, Catalog, Workload
from gpuplan.capacity.planner import plan_capacity


def scale_horizon(wl: Workload, horizon_h: float) -> Workload:
    """The workload with horizon `horizon_h` and deadlines scaled in proportion."""
    f = horizon_h / wl.horizon_h
    tasks = [
        t.model_copy(
            update={"deadline_h": None if t.deadline_h is None else min(t.deadline_h * f, horizon_h)}
        )
        for t in wl.tasks
    ]
    return Workload(horizon_h=horizon_h, tasks=tasks)


def scale_price(cat: Catalog, offer: str, factor: float) -> Catalog:
    """The catalog with one offer's price multiplied by `factor`."""
    offers = [
        o.model_copy(update={"price_per_node_hour": o.price_per_node_hour * factor}) if o.name == offer else o
        for o in cat.offers
    ]
    return cat.model_copy(update={"offers": offers})


def _row(sweep: str, scenario: str, factor: float, cat: Catalog, rep: CapacityReport) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sweep": sweep,
        "horizon_h": rep.horizon_h,
        "scenario": scenario,
        "factor": factor,
        "status": rep.status,
        "cost": rep.cost,
        "milp_bound": rep.milp_bound,
        "lp_bound": rep.lp_bound,
        "gap_lp": rep.gap_lp,
        "rounds": len(rep.rounds),
    }
    nodes = {f.offer: f.nodes for f in rep.fleet}
    util = {u.offer: u.utilization for u in rep.utilization}
    for o in cat.offers:
        row[f"nodes_{o.name}"] = nodes.get(o.name, 0)
    for o in cat.offers:
        row[f"util_{o.name}"] = util.get(o.name, "")
    return row


def run_sweeps(
    wl: Workload,
    cat: Catalog,
    *,
    horizons: list[float],
    price_factors: list[float],
    progress: Callable[[str], None] | None = None,
    **plan_kw: Any,
) -> list[dict[str, Any]]:
    """One row per sweep point (see the module docstring)."""
    say = progress or (lambda _m: None)
    out: list[dict[str, Any]] = []
    for h in horizons:
        rep = plan_capacity(scale_horizon(wl, h), cat, alternatives=0, **plan_kw)
        say(f"sweep horizon {h:g} h: {rep.status}, cost {rep.cost}")
        out.append(_row("horizon", "base", 1.0, cat, rep))
    for offer in [o.name for o in cat.offers] if price_factors else []:
        for f in price_factors:
            c = scale_price(cat, offer, f)
            rep = plan_capacity(wl, c, alternatives=0, **plan_kw)
            say(f"sweep price {offer} x{f:g}: {rep.status}, cost {rep.cost}")
            out.append(_row("price", offer, f, cat, rep))
    return out


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Rows to CSV (columns from the first row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        if not rows:
            return
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed (the optional `plot` extra)."""

    MESSAGE = "plots need matplotlib: pip install 'gpuplan[plot]' (or pip install matplotlib)"


def write_plot(rows: list[dict[str, Any]], report: CapacityReport, path: str | Path) -> None:
    """PNG: cost frontier over the horizon, cost per price scenario, utilization per type."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(PlotUnavailable.MESSAGE) from None
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    hz = [r for r in rows if r["sweep"] == "horizon" and r["cost"] is not None]
    ax = axes[0]
    if hz:
        xs = [r["horizon_h"] for r in hz]
        ax.plot(xs, [r["cost"] for r in hz], "o-", label="proven fleet cost")
        ax.plot(xs, [r["lp_bound"] for r in hz], "s--", label="LP lower bound")
        ax.legend()
    ax.set(title="Cost frontier over the horizon", xlabel="horizon (h)", ylabel=f"cost ({report.currency})")
    ax = axes[1]
    for offer in sorted({r["scenario"] for r in rows if r["sweep"] == "price"}):
        pts = [r for r in rows if r["sweep"] == "price" and r["scenario"] == offer and r["cost"] is not None]
        ax.plot([r["factor"] for r in pts], [r["cost"] for r in pts], "o-", label=offer)
    if any(r["sweep"] == "price" for r in rows):
        ax.legend(fontsize=8)
    ax.set(title="Cost when one offer's price changes", xlabel="price factor", ylabel="cost")
    ax = axes[2]
    names = [u.offer for u in report.utilization]
    ax.bar(names, [100 * u.utilization for u in report.utilization])
    ax.set(title="Utilization per type (chosen fleet)", ylabel="% of GPU-hours", ylim=(0, 100))
    ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"gpuplan capacity - prices: {report.price_notice or 'as given'}", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["PlotUnavailable", "run_sweeps", "scale_horizon", "scale_price", "write_csv", "write_plot"]

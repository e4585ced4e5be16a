"""`gpuplan capacity WORKLOAD.json CATALOG.json`: choose, prove and cost a fleet; sweeps; schemas.

stdout carries the report as JSON; the rounds and sweep progress go to stderr. Exit codes: 0 a
proven fleet; 2 invalid input (one line naming the file, field and value); 3 infeasible (a
required task fits no offer, or no fleet within max_nodes holds the work: the report, with the
reasons, is still printed); 4 no proven fleet within the rounds or time (report printed); 1 internal.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gpuplan.cli.exit_codes import EXIT_INFEASIBLE, EXIT_NO_SOLUTION, EXIT_OK
from gpuplan.cli.jsonio import _write, load_json, validated
from gpuplan.errors import InputError


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(flag, f"expected comma-separated numbers (got {text!r})") from None
    bad = [v for v in values if not v > 0 or v != v or v == float("inf")]
    if not values or bad:
        raise InputError(flag, f"values must be finite and > 0 (got {text!r})")
    return values


def _load(model: Any, source: str, name: str) -> Any:
    try:
        data = load_json(source)
    except InputError as exc:
        if exc.path == source:  # no such file, invalid JSON: the file name says enough
            raise
        raise InputError(f"{name}.{exc.path}" if exc.path else name, exc.message) from None
    return validated(model, data, name)


def cmd_capacity(args: argparse.Namespace) -> int:
    """Plan the fleet, print the report; optionally sweep to CSV and plot."""
    from gpuplan.capacity.models import CapacityReport, Catalog, Workload
    from gpuplan.capacity.planner import plan_capacity
    from gpuplan.capacity.prepare import CapacityInputError, prepare

    if args.schema:
        model = {"workload": Workload, "catalog": Catalog, "report": CapacityReport}[args.schema]
        print(json.dumps(model.model_json_schema(), indent=2))
        return EXIT_OK
    if not args.workload or not args.catalog:
        raise InputError(
            "capacity", "give WORKLOAD.json and CATALOG.json (or --schema workload|catalog|report)"
        )
    for flag, value in (("--time-limit", args.time_limit), ("--proof-time", args.proof_time)):
        if not value > 0:
            raise InputError(flag, f"must be > 0 (got {value})")
    if args.max_rounds < 1:
        raise InputError("--max-rounds", f"must be >= 1 (got {args.max_rounds})")
    horizons = _floats(args.sweep_horizon, "--sweep-horizon") if args.sweep_horizon else []
    factors = _floats(args.sweep_price, "--sweep-price") if args.sweep_price else []
    if (args.csv or args.plot) and not (horizons or factors):
        raise InputError("--csv/--plot", "need --sweep-horizon and/or --sweep-price")
    wl = _load(Workload, args.workload, "workload")
    cat = _load(Catalog, args.catalog, "catalog")

    def say(msg: str) -> None:
        print(f"gpuplan capacity: {msg}", file=sys.stderr)

    kw = dict(
        time_limit_s=args.time_limit,
        proof_time_s=args.proof_time,
        workers=args.workers,
        seed=args.seed,
        max_rounds=args.max_rounds,
    )
    try:
        prepare(wl, cat)  # cross-references (unknown GPU types) before any output
    except CapacityInputError as exc:
        raise InputError(exc.path, exc.message) from None
    if cat.notice:
        say(f"prices: {cat.notice}")
    report = plan_capacity(wl, cat, alternatives=args.alternatives, progress=say, **kw)
    if horizons or factors:
        from gpuplan.capacity.sweep import PlotUnavailable, run_sweeps, write_csv, write_plot

        if args.plot:  # fail before the sweep runs, not after
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise InputError("--plot", str(PlotUnavailable.MESSAGE)) from None
        rows = run_sweeps(wl, cat, horizons=horizons, price_factors=factors, progress=say, **kw)
        if args.csv:
            write_csv(rows, args.csv)
            say(f"sweep: {len(rows)} rows -> {args.csv}")
        if args.plot:
            write_plot(rows, report, args.plot)
            say(f"plot -> {args.plot}")
    _write(report.model_dump_json(indent=2), args.output)
    if report.status == "proven":
        return EXIT_OK
    return EXIT_INFEASIBLE if report.status == "infeasible" else EXIT_NO_SOLUTION


def add_commands(sub: Any) -> None:
    """Register `capacity` on the gpuplan subparsers."""
    c = sub.add_parser(
        "capacity",
        help="choose the cheapest fleet of offers for a workload, proven by an assignment",
        description="Size a fleet by a MILP over offers, prove it by assigning every task, report JSON.",
    )
    c.add_argument("workload", nargs="?", help="workload JSON (horizon_h, tasks)")
    c.add_argument("catalog", nargs="?", help="catalog JSON (offers with prices)")
    c.add_argument("-o", "--output", help="write the report here instead of stdout")
    c.add_argument("--schema", choices=["workload", "catalog", "report"], help="print a JSON Schema and exit")
    c.add_argument("--time-limit", type=float, default=30.0, help="wall-clock seconds per plan (default 30)")
    c.add_argument("--proof-time", type=float, default=6.0, help="engine seconds per proof round (default 6)")
    c.add_argument("--max-rounds", type=int, default=24, help="fleets proved at most (default 24)")
    c.add_argument("--alternatives", type=int, default=3, help="cheapest other mixes to report (default 3)")
    c.add_argument("--workers", type=int, default=None, help="solver threads (default: all cores)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sweep-horizon", help="comma-separated horizons in hours, e.g. 168,336,720")
    c.add_argument("--sweep-price", help="comma-separated price factors applied to each offer in turn")
    c.add_argument("--csv", help="write the sweep rows here")
    c.add_argument("--plot", help="write a PNG of the sweeps here (needs matplotlib: the plot extra)")
    c.set_defaults(func=cmd_capacity)


__all__ = ["add_commands", "cmd_capacity"]

"""`gpuplan history | calibrate`: what ran, and what it teaches the next plan.

`history` exports one record per attempt (JSON on stdout, or CSV with --csv); `calibrate` fits speeds
and durations from one or many runs and writes the calibration as JSON. Both only read the state
directories. Exit 0, or 2 for a path that holds no run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from gpuplan.cli.exit_codes import EXIT_OK
from gpuplan.cli.jsonio import _write


def cmd_history(args: argparse.Namespace) -> int:
    from gpuplan.history import load_history, to_csv, to_json

    records = load_history([Path(d) for d in args.state_dirs], metrics=not args.no_metrics)
    text = to_csv(records).rstrip("\n") if args.csv else json.dumps(to_json(records), indent=1)
    _write(text, args.output)
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from gpuplan.calibration import fit
    from gpuplan.history import load_history

    started = time.perf_counter()
    dirs = [Path(d) for d in args.state_dirs]
    records = load_history(dirs, metrics=False)
    cal = fit(records, runs=[str(d) for d in dirs])
    _write(cal.model_dump_json(indent=2), args.output)
    if not args.quiet:
        left = ", ".join(f"{n} {why}" for why, n in cal.excluded.items()) or "none"
        print(
            f"gpuplan calibrate: {cal.attempts} attempts, {cal.used} used (left out: {left}); "
            f"{len(cal.speeds)} GPU type speed(s), {len(cal.durations)} (group, type) duration(s) "
            f"in {time.perf_counter() - started:.2f} s",
            file=sys.stderr,
        )
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register history and calibrate on gpuplan's subparsers."""
    h = sub.add_parser("history", help="export every attempt of one or many runs (JSON, or CSV)")
    h.add_argument("state_dirs", nargs="+", metavar="STATE_DIR", help="a run's state directory")
    h.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    h.add_argument("-o", "--output", help="write here instead of stdout")
    h.add_argument("--no-metrics", action="store_true", help="skip the GPU samples (energy, peaks)")
    h.set_defaults(func=cmd_history)
    c = sub.add_parser("calibrate", help="fit GPU speeds and task-group durations from runs")
    c.add_argument("state_dirs", nargs="+", metavar="STATE_DIR", help="a run's state directory")
    c.add_argument("-o", "--output", help="write the calibration JSON here instead of stdout")
    c.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    c.set_defaults(func=cmd_calibrate)


__all__ = ["add_commands", "cmd_calibrate", "cmd_history"]

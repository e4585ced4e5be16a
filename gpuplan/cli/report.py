"""`gpuplan report PLAN [--run STATE_DIR] -o report.html`: one static HTML page, opens offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gpuplan.cli.exit_codes import EXIT_OK
from gpuplan.cli.jsonio import _write, load_json, load_problem, validated
from gpuplan.errors import InputError


def cmd_report(args: argparse.Namespace) -> int:
    from gpuplan.history import read_journal, run_records
    from gpuplan.models import Plan, Problem
    from gpuplan.report import render_report

    plan = validated(Plan, load_json(args.plan), args.plan)
    run = records = None
    if args.run is not None:
        run = read_journal(Path(args.run))
        records = run_records(run)
        ran = run.meta.get("plan") or {}
        if [a["task"] for a in ran.get("assignments", [])] != [a.task for a in plan.assignments]:
            print(
                f"gpuplan report: warning: the run in {args.run} was started from another plan; "
                "planned and actual are compared task by task",
                file=sys.stderr,
            )
    problem = None
    if args.problem is not None:
        parsed = load_problem(args.problem)
        if not isinstance(parsed, Problem):
            raise InputError(
                "--problem", "the report needs a fleet problem (GPU types, tasks), not the matrix form"
            )
        problem = parsed.model_dump(mode="json")
    title = args.title or f"gpuplan report: {Path(args.plan).name}"
    page = render_report(plan, run=run, records=records, problem=problem, title=title)
    _write(page.rstrip("\n"), args.output)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register report on gpuplan's subparsers."""
    r = sub.add_parser("report", help="a plan (and what a run made of it) as one static HTML page")
    r.add_argument("plan", help="plan JSON (from gpuplan solve)")
    r.add_argument(
        "--run", default=None, metavar="STATE_DIR", help="a run of the plan: planned against actual"
    )
    r.add_argument(
        "--problem", default=None, help="the plan's problem: adds the planned energy (default: the run's)"
    )
    r.add_argument("-o", "--output", help="write the HTML here instead of stdout")
    r.add_argument("--title", default=None, help="the page's title")
    r.set_defaults(func=cmd_report)


__all__ = ["add_commands", "cmd_report"]

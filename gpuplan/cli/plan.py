"""`gpuplan solve | validate | schema | show`: the planning subcommands.

`solve` writes the plan as JSON to stdout (or -o); exit 0 a plan with a solution, 3 proven
infeasible, 4 no solution within the time limit (or before a stop). The first SIGINT (Ctrl-C) or
SIGTERM stops the search and returns the best verified plan so far; a second exits 130 (143).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from gpuplan.cli.exit_codes import EXIT_INFEASIBLE, EXIT_NO_SOLUTION, EXIT_OK
from gpuplan.cli.jsonio import _write, load_json, load_problem
from gpuplan.cli.signals import run_stoppable_by_signals
from gpuplan.cli.timeline import timeline
from gpuplan.errors import InputError

#: `solve`'s settings by their name in the API and the problem's options -> the flag that sets them.
_FLAGS = {
    "solver": "--solver",
    "time_limit_s": "--time-limit",
    "workers": "--workers",
    "seed": "--seed",
    "partitions": "--partitions",
    "ray": "--ray",
}


def cmd_solve(args: argparse.Namespace) -> int:
    from gpuplan.api import solve
    from gpuplan.models import Status

    problem = load_problem(args.problem)
    use = None
    if args.calibration is not None:
        problem, use = _calibrated(problem, args.calibration, args.min_observations)
    try:
        plan = run_stoppable_by_signals(
            lambda stop: solve(
                problem,
                solver=args.solver,
                time_limit_s=args.time_limit,
                workers=args.workers,
                seed=args.seed,
                stop=stop,
                partitions=args.partitions,
                ray=args.ray,
            )
        )
    except InputError as exc:
        flag = _FLAGS.get(exc.path)
        if flag is None:
            raise
        # name the place the user chose the setting: the flag, or the problem's options
        given = flag in ("--partitions", "--ray") or getattr(args, flag[2:].replace("-", "_")) is not None
        raise InputError(flag if given else f"options.{exc.path}", exc.message) from None
    if use is not None:
        plan = plan.model_copy(update={"calibration": use})
    _write(plan.model_dump_json(indent=2), args.output)
    if args.summary:
        print(plan.summary(), file=sys.stderr)
    logging.getLogger("gpuplan").info("status %s, objective %s", plan.status.value, plan.objective)
    if plan.status.has_solution:
        return EXIT_OK
    return EXIT_INFEASIBLE if plan.status is Status.INFEASIBLE else EXIT_NO_SOLUTION


def _calibrated(problem: Any, path: str, min_observations: int) -> tuple[Any, Any]:
    """The problem with a calibration file's values applied, and the plan's note on their sources."""
    from gpuplan.calibration import Calibration, apply_calibration
    from gpuplan.cli.jsonio import validated
    from gpuplan.models import Problem

    if not isinstance(problem, Problem):
        raise InputError(
            "--calibration", "applies to a fleet problem (GPU types, tasks), not the matrix form"
        )
    cal = validated(Calibration, load_json(path), path)
    return apply_calibration(problem, cal, min_observations=min_observations, file=path)


def cmd_validate(args: argparse.Namespace) -> int:
    from gpuplan.models import Problem
    from gpuplan.program.gap_view import compile_problem

    problem = load_problem(args.problem)
    if isinstance(problem, Problem):
        from gpuplan.program.fleet import compile_fleet
        from gpuplan.program.gap_view import gap_like
        from gpuplan.program.priorities import TiersTooWide

        try:
            fc = compile_fleet(problem)
            tiers = ""
        except TiersTooWide as why:
            fc = compile_fleet(problem, flat_tiers=True)
            tiers = f"; {why}: solved tier by tier"
        fp = fc.program
        homeless = [fc.task_ids[t] for t in range(fp.n_tasks) if not fp.eligible(t).any()]
        when = problem.time_field()
        kind = "a GAP" if gap_like(fc) else "scheduled" if when is not None else "fleet model"
        if when is not None:
            tiers += f"; plans say when (from {when})"
        print(
            f"ok: valid problem ({kind}): {fp.n_tasks} tasks, {int((~fp.host).sum())} GPUs on {fp.n_nodes}"
            f" nodes, gangs {int((fp.gang > 1).sum())}, CPU-only tasks {int(fp.cpu_only.sum())}, objective "
            f"{', '.join(f'{k} x{w:g}' for k, w in fc.terms) or problem.objective.kind}{tiers}"
        )
        if homeless:
            print(f"warning: {len(homeless)} task(s) fit nowhere: {', '.join(homeless[:10])}")
        return EXIT_OK
    c = compile_problem(problem)
    prog = c.program
    homeless = [c.task_ids[t] for t in range(prog.n_tasks) if not prog.eligible[t].any()]
    print(
        f"ok: valid matrix: {prog.n_tasks} tasks, {prog.n_gpus} GPUs, "
        f"{int(prog.eligible.sum()):,} eligible pairs, resources {', '.join(prog.resource_names)}"
    )
    if homeless:
        print(f"warning: {len(homeless)} task(s) fit on no GPU: {', '.join(homeless[:10])}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from gpuplan.models import MatrixProblem, Plan, Problem

    model = {"problem": Problem, "plan": Plan, "matrix": MatrixProblem}[args.which]
    print(json.dumps(model.model_json_schema(), indent=2))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gpuplan.models import Plan
    from gpuplan.models.validation import format_validation_error

    data = load_json(args.plan)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc) from None
    print(plan.summary())
    bars = timeline(plan)
    if bars is not None:  # a scheduled plan: when each task runs, per GPU
        print()
        print(bars)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register solve, validate, schema and show on gpuplan's subparsers."""
    s = sub.add_parser("solve", help="solve a problem; the plan goes to stdout as JSON")
    s.add_argument("problem", help="problem JSON file, or - for stdin")
    s.add_argument("-o", "--output", help="write the plan here instead of stdout")
    s.add_argument("--solver", choices=["auto", "greedy", "cpsat", "milp"], default=None)
    s.add_argument("--time-limit", type=float, default=None, help="wall-clock seconds (default 10)")
    s.add_argument("--workers", type=int, default=None, help="solver threads (default: all cores)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument(
        "--partitions",
        type=int,
        default=1,
        metavar="K",
        help="cut the fleet and the tasks into K parts solved side by side in worker processes (at most"
        " --workers at a time), then repaired on the whole fleet; the bound stays the whole problem's."
        " Not for scheduled problems or the matrix form (default 1: solve whole)",
    )
    s.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="ADDRESS",
        help="with --partitions: run the parts as tasks on a Ray cluster (auto, or HOST:PORT) instead of"
        " local worker processes; gpuplan must be installed on its nodes (pip install 'gpuplan[ray]')",
    )
    s.add_argument("--summary", action="store_true", help="also print a readable summary to stderr")
    s.add_argument(
        "--calibration", default=None, help="plan with the speeds and durations of `gpuplan calibrate`"
    )
    s.add_argument(
        "--min-observations",
        type=int,
        default=3,
        help="fewest observations for a calibrated value to be used (default 3)",
    )
    s.set_defaults(func=cmd_solve)
    v = sub.add_parser("validate", help="check a problem and report what it holds")
    v.add_argument("problem")
    v.set_defaults(func=cmd_validate)
    sc = sub.add_parser("schema", help="print the JSON Schema of a problem, plan or matrix")
    sc.add_argument("which", choices=["problem", "plan", "matrix"])
    sc.set_defaults(func=cmd_schema)
    sh = sub.add_parser("show", help="print a plan's summary (and, when scheduled, a timeline per GPU)")
    sh.add_argument("plan")
    sh.set_defaults(func=cmd_show)


__all__ = ["add_commands", "cmd_schema", "cmd_show", "cmd_solve", "cmd_validate"]

"""The `gpuplan` command: JSON in, JSON out on stdout; logs and progress on stderr.

Exit codes: 0 a plan with a solution; 1 internal error; 2 invalid input; 3 proven infeasible;
4 no solution within the time limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from gpuplan.errors import InputError
from gpuplan.models.validation import format_validation_error

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID, EXIT_INFEASIBLE, EXIT_NO_SOLUTION = 0, 1, 2, 3, 4


def _first_non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """Path and value of the first NaN or infinity in a parsed JSON document."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub_path, sub in items:
        found = _first_non_finite(sub, sub_path)
        if found:
            return found
    return None


def load_json(source: str) -> Any:
    """Read JSON from a path or '-' (stdin); NaN and Infinity are refused."""
    if source == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        p = Path(source)
        if not p.is_file():
            raise InputError(source, "no such file")
        text = p.read_text(encoding="utf-8", errors="replace")
        name = source
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    bad = _first_non_finite(data)
    if bad:
        spelled = "NaN" if math.isnan(bad[1]) else ("Infinity" if bad[1] > 0 else "-Infinity")
        raise InputError(bad[0], f"invalid number {spelled}: numbers must be finite")
    return data


def validated(model: Any, data: Any, name: str) -> Any:
    """`model.model_validate(data)`; bad input becomes one InputError with `name` before the field path
    (so a run with several input files says which one is wrong)."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise InputError(name, f"expected a JSON object at the top level (got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = format_validation_error(exc)
        raise InputError(f"{name}.{err.path}" if err.path else name, err.message) from None


def load_problem(source: str) -> Any:
    """Path or '-' -> Problem or MatrixProblem; bad input raises InputError."""
    from pydantic import ValidationError

    from gpuplan.optimizer.solve import parse_problem

    data = load_json(source)
    if not isinstance(data, dict):
        raise InputError("", f"expected a JSON object at the top level (got {type(data).__name__})")
    try:
        return parse_problem(data)
    except ValidationError as exc:
        raise format_validation_error(exc) from None


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")


def cmd_solve(args: argparse.Namespace) -> int:
    from gpuplan.models import Status
    from gpuplan.optimizer.solve import solve

    problem = load_problem(args.problem)
    if args.time_limit is not None and args.time_limit <= 0:
        raise InputError("--time-limit", f"must be > 0 (got {args.time_limit})")
    from gpuplan.models import Problem

    chosen = args.solver or (problem.options.solver if isinstance(problem, Problem) else "auto")
    if chosen == "milp" and isinstance(problem, Problem) and problem.uses_fleet_features:
        raise InputError(
            "--solver" if args.solver else "options.solver",
            "'milp' covers the GAP core only; this problem uses the fleet model (gangs, node "
            "resources, placement rules, data, migration or another objective): use auto, cpsat or greedy",
        )
    plan = solve(
        problem, solver=args.solver, time_limit_s=args.time_limit, workers=args.workers, seed=args.seed
    )
    _write(plan.model_dump_json(indent=2), args.output)
    if args.summary:
        print(plan.summary(), file=sys.stderr)
    logging.getLogger("gpuplan").info("status %s, objective %s", plan.status.value, plan.objective)
    if plan.status.has_solution:
        return EXIT_OK
    return EXIT_INFEASIBLE if plan.status is Status.INFEASIBLE else EXIT_NO_SOLUTION


def cmd_validate(args: argparse.Namespace) -> int:
    from gpuplan.models import Problem
    from gpuplan.optimizer.compile import compile_problem

    problem = load_problem(args.problem)
    if isinstance(problem, Problem) and problem.uses_fleet_features:
        from gpuplan.optimizer.fleet import compile_fleet

        fc = compile_fleet(problem)
        fp = fc.program
        homeless = [fc.task_ids[t] for t in range(fp.n_tasks) if not fp.eligible(t).any()]
        print(
            f"ok: valid problem (fleet model): {fp.n_tasks} tasks, {fp.n_gpus} GPUs on {fp.n_nodes} nodes, "
            f"gangs {int((fp.gang > 1).sum())}, objective {', '.join(f'{k} x{w:g}' for k, w in fc.terms)}"
        )
        if homeless:
            print(f"warning: {len(homeless)} task(s) fit on no GPU: {', '.join(homeless[:10])}")
        return EXIT_OK
    c = compile_problem(problem)
    prog = c.program
    homeless = [c.task_ids[t] for t in range(prog.n_tasks) if not prog.eligible[t].any()]
    kind = "problem" if isinstance(problem, Problem) else "matrix"
    print(
        f"ok: valid {kind}: {prog.n_tasks} tasks, {prog.n_gpus} GPUs, "
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

    data = load_json(args.plan)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc) from None
    print(plan.summary())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used for --help)."""
    ap = argparse.ArgumentParser(prog="gpuplan", description="Decide which GPU runs which task.")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve a problem; the plan goes to stdout as JSON")
    s.add_argument("problem", help="problem JSON file, or - for stdin")
    s.add_argument("-o", "--output", help="write the plan here instead of stdout")
    s.add_argument("--solver", choices=["auto", "greedy", "cpsat", "milp"], default=None)
    s.add_argument("--time-limit", type=float, default=None, help="wall-clock seconds (default 10)")
    s.add_argument("--workers", type=int, default=None, help="solver threads (default: all cores)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--summary", action="store_true", help="also print a readable summary to stderr")
    s.set_defaults(func=cmd_solve)
    v = sub.add_parser("validate", help="check a problem and report what it holds")
    v.add_argument("problem")
    v.set_defaults(func=cmd_validate)
    sc = sub.add_parser("schema", help="print the JSON Schema of a problem, plan or matrix")
    sc.add_argument("which", choices=["problem", "plan", "matrix"])
    sc.set_defaults(func=cmd_schema)
    sh = sub.add_parser("show", help="print a readable summary of a plan file")
    sh.add_argument("plan")
    sh.set_defaults(func=cmd_show)
    from gpuplan.executor.cli import add_commands as add_executor_commands

    add_executor_commands(sub)  # run, status, stop, inventory
    from gpuplan.capacity.cli import add_commands as add_capacity_commands

    add_capacity_commands(sub)  # capacity
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_INVALID if exc.code else EXIT_OK
    if args.verbose:
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.DEBUG if args.verbose > 1 else logging.INFO,
            format="gpuplan: %(message)s",
        )
    try:
        return int(args.func(args))
    except InputError as exc:
        print(f"gpuplan: error: {exc}", file=sys.stderr)
        if getattr(args, "command", "") == "solve" and not getattr(args, "output", None):
            sys.stdout.write(json.dumps({"status": "invalid", "error": str(exc)}) + "\n")
        return EXIT_INVALID
    except BrokenPipeError:  # e.g. `gpuplan show plan.json | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("gpuplan: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:
        if os.environ.get("GPUPLAN_DEBUG"):
            raise
        print(
            f"gpuplan: internal error: {type(exc).__name__}: {exc} (set GPUPLAN_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: subcommands raise gpuplan.cli.InputError,
    # which must be the class main() catches (else bad input would read as an internal error).
    from gpuplan.cli import main as _main

    sys.exit(_main())

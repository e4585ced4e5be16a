"""The `gpuplan` command: JSON in, JSON out on stdout; logs and progress on stderr.

One module per command family (`plan`: solve, validate, schema, show; `executor`: run, status, stop,
inventory; `capacity`; `history`: history, calibrate; `report`), `jsonio` for reading and writing
JSON, and `main` here: the one place that turns errors into exit codes. Exit codes: 0 a plan with a
solution; 1 internal error; 2 invalid input; 3 proven infeasible; 4 no solution within the time
limit; 130 (143) aborted by a second SIGINT (SIGTERM), or by Ctrl-C outside a solve. The library
never imports this package.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from gpuplan.cli.exit_codes import (
    EXIT_INFEASIBLE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_NO_SOLUTION,
    EXIT_OK,
)
from gpuplan.cli.jsonio import load_json, load_problem, validated
from gpuplan.errors import InputError

#: Longest error message printed (characters); the rest is cut (a value may be huge).
MESSAGE_CHARS = 500


def one_line(text: str) -> str:
    """`text` as one printable line of at most MESSAGE_CHARS characters (line breaks escaped)."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used for --help)."""
    from gpuplan.cli import capacity, executor, history, plan, report

    ap = argparse.ArgumentParser(prog="gpuplan", description="Decide which GPU runs which task.")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)")
    sub = ap.add_subparsers(dest="command", required=True)
    plan.add_commands(sub)  # solve, validate, schema, show
    executor.add_commands(sub)  # run, status, stop, inventory
    capacity.add_commands(sub)  # capacity
    history.add_commands(sub)  # history, calibrate
    report.add_commands(sub)  # report
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (every error a subcommand raises is mapped here)."""
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
        message = one_line(str(exc))
        print(f"gpuplan: error: {message}", file=sys.stderr)
        if getattr(args, "command", "") == "solve" and not getattr(args, "output", None):
            sys.stdout.write(json.dumps({"status": "invalid", "error": message}) + "\n")
        return EXIT_INVALID
    except BrokenPipeError:  # e.g. `gpuplan show plan.json | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_INTERNAL
    except KeyboardInterrupt:  # Ctrl-C outside a solve (reading input, a command without a stop)
        print("gpuplan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("GPUPLAN_DEBUG"):
            raise
        print(
            f"gpuplan: internal error: {type(exc).__name__}: {exc} (set GPUPLAN_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


__all__ = [
    "EXIT_INFEASIBLE",
    "EXIT_INTERNAL",
    "EXIT_INVALID",
    "EXIT_NO_SOLUTION",
    "EXIT_OK",
    "InputError",
    "build_parser",
    "load_json",
    "load_problem",
    "main",
    "validated",
]

"""The command line's exit codes, shared by every subcommand."""

from __future__ import annotations

#: 0 a plan (fleet, run) with a solution; 1 internal error; 2 invalid input; 3 proven infeasible
#: (or tasks failed); 4 no solution within the time limit (or the run was stopped).
EXIT_OK, EXIT_INTERNAL, EXIT_INVALID, EXIT_INFEASIBLE, EXIT_NO_SOLUTION = 0, 1, 2, 3, 4
#: Aborted by Ctrl-C (128 + SIGINT): a second one during a solve, or one outside a solve; a second
#: SIGTERM exits 128 + SIGTERM = 143.
EXIT_INTERRUPTED = 130

__all__ = [
    "EXIT_INFEASIBLE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_NO_SOLUTION",
    "EXIT_OK",
]

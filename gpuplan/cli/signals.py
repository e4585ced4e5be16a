"""Ctrl-C and SIGTERM during a solve: the first asks for the best plan so far, a second aborts.

The solve runs in a worker thread so that the main thread, which alone receives signals in Python,
stays free to act on them at once (a solver blocked in native code would otherwise delay them).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from gpuplan.interrupt import kill_children

T = TypeVar("T")

#: Signals that stop a solve: the first sets the stop, a second exits with 128 + its number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How often the main thread looks at the worker (seconds); signals wake it sooner.
_JOIN_S = 0.1


def run_stoppable_by_signals(fn: Callable[[threading.Event], T]) -> T:
    """`fn(stop)` in a worker thread; SIGINT or SIGTERM sets `stop` once (a message on stderr), and a
    second one ends the process at once with exit code 128 + the signal's number (130, 143).
    Outside the main thread (where Python cannot install handlers) `fn` simply runs here."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return fn(stop)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            print(f"gpuplan: {name} again: aborted", file=sys.stderr, flush=True)
            kill_children()
            os._exit(128 + signum)
        stop.set()
        print(
            f"gpuplan: interrupted ({name}): stopping the search, the best plan found so far follows"
            f" ({name} again to abort)",
            file=sys.stderr,
            flush=True,
        )

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = fn(stop)
        except BaseException as exc:  # re-raised in the main thread below
            box["error"] = exc

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        worker = threading.Thread(target=work, name="gpuplan-solve", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(_JOIN_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


__all__ = ["STOP_SIGNALS", "run_stoppable_by_signals"]

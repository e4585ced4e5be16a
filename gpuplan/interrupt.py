"""Stopping a solve early: the caller's stop request, seen by every search loop and solver.

`solve(..., stop=event)` makes `event` (a `threading.Event`, or any callable returning True once
the caller wants the best plan found so far) the stop of the calling context (`watching`). Search
loops test `requested()` beside their deadline checks (`past(deadline)` does both); solvers that
block in native code are stopped by `run_stoppable` (CP-SAT: `solve_cpsat`), whose watcher thread
calls their stop function. A stop is not an error: the searches return what they have, which is then
decoded and verified as after a time limit.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: How often a watcher looks at a stop given as a plain callable (seconds).
POLL_S = 0.05


class StopLike(Protocol):
    """What `solve` accepts as `stop`: anything with `is_set()` (a `threading.Event`)."""

    def is_set(self) -> bool: ...


Stop = StopLike | Callable[[], bool]

_CURRENT: contextvars.ContextVar[Stop | None] = contextvars.ContextVar("gpuplan_stop", default=None)


def _is_set(stop: Stop) -> bool:
    if hasattr(stop, "is_set"):
        return bool(stop.is_set())
    return bool(stop())  # type: ignore[operator]


def requested() -> bool:
    """True once the stop of the current context has been set."""
    stop = _CURRENT.get()
    return stop is not None and _is_set(stop)


def past(deadline: float) -> bool:
    """True at or after `deadline` (a time.monotonic() instant), or once a stop is requested."""
    return time.monotonic() >= deadline or requested()


@contextmanager
def watching(stop: Stop | None) -> Iterator[None]:
    """Within the block, `requested()` follows `stop` (None: never); threads started with
    `in_context` see it too."""
    token = _CURRENT.set(stop)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` bound to the current context, for a thread's target (threads start without it)."""
    ctx = contextvars.copy_context()
    return lambda *args: ctx.run(fn, *args)


def run_stoppable(run: Callable[[], T], stop_search: Callable[[], None]) -> T:
    """`run()`, with `stop_search()` called (again every POLL_S, until `run` returns) once a stop is
    requested: for solvers that block in native code and offer a thread-safe stop."""
    stop = _CURRENT.get()
    if stop is None:
        return run()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if _is_set(stop):
                stop_search()
            done.wait(POLL_S)

    watcher = threading.Thread(target=watch, name="gpuplan-stop", daemon=True)
    watcher.start()
    try:
        return run()
    finally:
        done.set()
        watcher.join()


def solve_cpsat(solver: Any, model: Any, callback: Any = None) -> Any:
    """`solver.solve(model, callback)` for an OR-Tools CP-SAT solver, stopped by a stop request. CP-SAT's
    own SIGINT handler is turned off: signals are the command line's to handle (with it, a Ctrl-C
    during a solve in a worker thread aborted the process)."""
    solver.parameters.catch_sigint_signal = False
    return run_stoppable(lambda: solver.solve(model, callback), solver.stop_search)


class _Killable(Protocol):
    def kill(self) -> None: ...


_CHILDREN: set[_Killable] = set()
_CHILDREN_LOCK = threading.Lock()


@contextmanager
def owned(child: _Killable) -> Iterator[None]:
    """Within the block, `kill_children()` kills `child` (a subprocess.Popen a solver waits on), so
    that an abort leaves no solver process behind."""
    with _CHILDREN_LOCK:
        _CHILDREN.add(child)
    try:
        yield
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(child)


def kill_children() -> None:
    """Kill every child process registered by `owned` (before the process exits at once)."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        with suppress(OSError):  # already gone
            child.kill()


__all__ = [
    "POLL_S",
    "Stop",
    "StopLike",
    "in_context",
    "kill_children",
    "owned",
    "past",
    "requested",
    "run_stoppable",
    "solve_cpsat",
    "watching",
]

"""Where attempts run: a site starts, watches and signals the attempt processes of one machine.

The executor talks to sites only in batches (one call per site per loop turn, begun on every site
before any is awaited), so a site may be this machine (`LocalSite`: a spawner and the wrapper
files) or an agent on another node reached over the network (`gpuplan.executor.raycluster`), at one
round trip per batch. The journal stays with the executor; a site holds no state a restarted
executor needs beyond the wrapper files.

**Announced ends.** A local site given an `ended` directory has each wrapper it starts create a
file there once the attempt's exit is recorded (named by `announcement`), so a plain poll lists
that one directory and reads the exit files of the ends announced there, plus those of the attempts
whose life check is due (about once a second: a wrapper killed announces nothing), rather than every
running attempt's exit file every loop turn. The exit file stays the record; an announcement only
says when to read it, so a missing one (an attempt started by a gpuplan before announcements, or a
removed directory) delays an end to its next life check. A fresh poll reads every exit file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from gpuplan.executor import launcher
from gpuplan.executor.launcher import LaunchRequest

#: One poll result: (ended, exit code); the code is None when the wrapper vanished without one.
Outcome = tuple[bool, int | None]

#: Seconds between checks that a running attempt's wrapper is still alive (a few `/proc` reads).
ALIVE_CHECK_S = 1.0


@dataclass(frozen=True)
class Probe:
    """An attempt to look at: its directory, its wrapper's pid (None: never spawned), and whether to
    check that the wrapper is still alive (a few `/proc` reads; done about once a second). Checked
    without a pid, an attempt without an exit record has ended."""

    dir: str
    pid: int | None
    check_alive: bool = True


class Site(Protocol):
    """What the executor needs from the machine an attempt runs on; `cores`: the CPUs it offers, the
    most launches one round starts there (`scheduling.ROUND_MAX`)."""

    node: str
    lost: bool
    cores: int

    def spawn(self, requests: list[LaunchRequest]) -> Callable[[], list[int | str]]:
        """Begin starting one wrapper per request; the returned function gives, per request, its
        pid or why it could not start. The executor begins every site's batch before it collects
        any, so the nodes of a cluster fork their wrappers at the same time."""
        ...

    def poll(self, probes: list[Probe], fresh: bool = False) -> Callable[[], list[Outcome]]:
        """Begin looking at attempts; the returned function gives one outcome per probe. Without
        `fresh` a site may answer from what its node last reported (a node agent that reports ends
        as they happen); with it, it looks now."""
        ...

    def signal(self, pids: list[int], sig: int) -> None:
        """Send `sig` to each wrapper's process group."""
        ...

    def cancel_if_unclaimed(self, dirs: list[str]) -> list[bool]:
        """Claim each attempt for cancellation (True: it never ran and now never will)."""
        ...

    def files(self, dirs: list[str]) -> list[dict[str, Any]]:
        """Each attempt's `claim` and `exit` records ({"claim": ..., "exit": ...}, None when absent)."""
        ...

    def alive(self, probes: list[Probe]) -> list[bool]:
        """Whether each attempt's wrapper is alive."""
        ...

    def close(self) -> None:
        """Release the site (running attempts keep running)."""
        ...


def poll_files(probes: list[Probe]) -> list[Outcome]:
    """Outcomes from the wrapper files on this machine (used by the local site and by agents)."""
    out: list[Outcome] = []
    for p in probes:
        d = Path(p.dir)
        ex = launcher.read_exit(d)
        if ex is not None:
            out.append((True, int(ex["rc"])))
        elif p.check_alive and (p.pid is None or not launcher.wrapper_alive(p.pid, d)):
            ex = launcher.read_exit(d)
            out.append((True, None if ex is None else int(ex["rc"])))
        else:
            out.append((False, None))
    return out


def announcement(attempt_dir: str) -> str:
    """The file name an attempt's end is announced by (a hash of its directory; not for security)."""
    return hashlib.sha1(attempt_dir.encode(), usedforsecurity=False).hexdigest()[:24]


class LocalSite:
    """This machine: a spawner for launches, the wrapper files for outcomes, signals to groups; with
    `ended`, the directory where its wrappers announce their ends (module docstring)."""

    lost = False

    def __init__(
        self, node: str, *, spawner_log: Path | None = None, fence: bool = False, ended: Path | None = None
    ) -> None:
        self.node = node
        self.cores = len(os.sched_getaffinity(0))  # the CPUs this process may run on
        self.spawner = launcher.Spawner(fence=fence, stderr=spawner_log)
        self.ended = ended
        if ended is not None:
            ended.mkdir(parents=True, exist_ok=True)
        self._names: dict[str, str] = {}  # attempt dir -> its announcement's name, while it may run

    def name(self, attempt_dir: str) -> str:
        """The announcement name of an attempt (kept while the attempt may run)."""
        n = self._names.get(attempt_dir)
        if n is None:
            n = self._names[attempt_dir] = announcement(attempt_dir)
        return n

    def announced(self) -> set[str]:
        """The names of the ends announced and not yet taken (`taken`)."""
        if self.ended is None:
            return set()
        try:
            return set(os.listdir(self.ended))
        except FileNotFoundError:  # removed: made again; meanwhile life checks find the ends
            self.ended.mkdir(parents=True, exist_ok=True)
            return set()

    def taken(self, attempt_dirs: list[str]) -> None:
        """Forget attempts reported ended and remove their announcements."""
        for d in attempt_dirs:
            n = self._names.pop(d, None) or announcement(d)
            if self.ended is not None:
                (self.ended / n).unlink(missing_ok=True)

    def spawn(self, requests: list[LaunchRequest]) -> Callable[[], list[int | str]]:
        if self.ended is not None:
            requests = [replace(r, notify=str(self.ended / self.name(r.dir))) for r in requests]
        result = self.spawner.spawn(requests)
        return lambda: result

    def poll(self, probes: list[Probe], fresh: bool = False) -> Callable[[], list[Outcome]]:
        """Fresh (or without announcements): every probe's exit file. Else those of the ends
        announced and of the probes whose life is to be checked; the others are still running."""
        if fresh or self.ended is None:
            result = poll_files(probes)
        else:
            names = self.announced()
            look = [k for k, p in enumerate(probes) if p.check_alive or self.name(p.dir) in names]
            result = [(False, None)] * len(probes)
            for k, outcome in zip(look, poll_files([probes[k] for k in look]), strict=True):
                result[k] = outcome
        self.taken([p.dir for p, (done, _) in zip(probes, result, strict=True) if done])
        return lambda: result

    def signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            launcher.signal_group(pid, sig)

    def cancel_if_unclaimed(self, dirs: list[str]) -> list[bool]:
        return [launcher.cancel_if_unclaimed(Path(d)) for d in dirs]

    def files(self, dirs: list[str]) -> list[dict[str, Any]]:
        return [{"claim": launcher.read_claim(Path(d)), "exit": launcher.read_exit(Path(d))} for d in dirs]

    def alive(self, probes: list[Probe]) -> list[bool]:
        return [p.pid is not None and launcher.wrapper_alive(p.pid, Path(p.dir)) for p in probes]

    def close(self) -> None:
        self.spawner.close()


__all__ = ["ALIVE_CHECK_S", "LocalSite", "Outcome", "Probe", "Site", "announcement", "poll_files"]

"""Where attempts run: a site starts, watches and signals the attempt processes of one machine.

The executor talks to sites only in batches (one call per site per loop turn, begun on every site
before any is awaited), so a site may be this machine (`LocalSite`: a spawner and the wrapper
files) or an agent on another node reached over the network (`gpuplan.executor.raycluster`), at one
round trip per batch. The journal stays with the executor; a site holds no state a restarted
executor needs beyond the wrapper files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    """What the executor needs from the machine an attempt runs on."""

    node: str
    lost: bool

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


class LocalSite:
    """This machine: a spawner for launches, the wrapper files for outcomes, signals to groups."""

    lost = False

    def __init__(self, node: str, *, spawner_log: Path | None = None, fence: bool = False) -> None:
        self.node = node
        self.spawner = launcher.Spawner(fence=fence, stderr=spawner_log)

    def spawn(self, requests: list[LaunchRequest]) -> Callable[[], list[int | str]]:
        result = self.spawner.spawn(requests)
        return lambda: result

    def poll(self, probes: list[Probe], fresh: bool = False) -> Callable[[], list[Outcome]]:
        result = poll_files(probes)
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


__all__ = ["ALIVE_CHECK_S", "LocalSite", "Outcome", "Probe", "Site", "poll_files"]

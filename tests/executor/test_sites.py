"""The local site's announced ends: a plain poll reads the exit files of announced ends and due
life checks only; a fresh poll, or a life check, finds an end that was never announced."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from exec_helpers import count_exit_reads, sh_request

from gpuplan.executor import launcher
from gpuplan.executor.sites import LocalSite, Probe


def test_a_plain_poll_reads_only_the_exit_files_of_announced_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = LocalSite("", ended=tmp_path / "ended")
    long = [sh_request(tmp_path, f"long{k}", "sleep 30") for k in range(12)]
    short = sh_request(tmp_path, "short", "sleep 0.3; exit 4")
    pids = site.spawn([*long, short])()
    assert all(isinstance(p, int) for p in pids)
    probes = [Probe(r.dir, int(p), False) for r, p in zip([*long, short], pids, strict=True)]
    reads = count_exit_reads(monkeypatch)
    try:
        deadline, turns = time.monotonic() + 10, 0
        while (out := site.poll(probes)())[-1] == (False, None) and time.monotonic() < deadline:
            turns += 1
            time.sleep(0.02)
        assert out == [(False, None)] * 12 + [(True, 4)]
        assert turns > 5 and reads == [short.dir]  # 13 attempts, every turn: 13 reads each without
        assert list((tmp_path / "ended").iterdir()) == []  # the announcement is taken
        reads.clear()
        assert site.poll(probes[:12], fresh=True)() == [(False, None)] * 12 and len(reads) == 12
        reads.clear()
        assert site.poll([Probe(long[0].dir, int(pids[0]), True)])() == [(False, None)] and reads
    finally:
        for p in pids[:-1]:
            os.killpg(int(p), signal.SIGKILL)
        site.close()


def test_an_end_never_announced_is_found_by_a_life_check_or_a_fresh_poll(tmp_path: Path) -> None:
    """An attempt started without an announcement (by a gpuplan before them, say) is not lost: a
    plain poll says it runs until its life check, which reads its exit file."""
    site = LocalSite("", ended=tmp_path / "ended")
    req = sh_request(tmp_path, "old", "exit 3")
    (pid,) = site.spawner.spawn([req])  # straight to the spawner: no `notify`
    assert isinstance(pid, int)
    deadline = time.monotonic() + 10
    while launcher.read_exit(Path(req.dir)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert site.poll([Probe(req.dir, pid, False)])() == [(False, None)]
        assert site.poll([Probe(req.dir, pid, True)])() == [(True, 3)]
        assert site.poll([Probe(req.dir, pid, False)], fresh=True)() == [(True, 3)]
    finally:
        site.close()

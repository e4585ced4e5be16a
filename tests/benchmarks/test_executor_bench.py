"""The executor benchmark's measure of its tasks' own start-up, and the memory it frees before a wave."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.executor_bench import TASK_KINDS, FreshPages, start_in_run, task_argv, task_start


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_task_start_measures_cpu_and_its_ceiling(kind: str) -> None:
    """Each kind of task starts (it must find CUDA_VISIBLE_DEVICES), takes some CPU, and the ceiling
    is the cores over that CPU."""
    res = task_start(kind, n=3)
    assert res["cpu_ms"] > 0 and res["cores"] >= 1
    assert res["ceiling_per_s"] == pytest.approx(res["cores"] / (res["cpu_ms"] / 1000), rel=0.01)


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_each_python_task_records_its_own_start_up(kind: str, tmp_path: Path) -> None:
    """A Python task writes its start-up CPU and preemptions before it sleeps (read back by
    `start_in_run`); a shell task records none."""
    for k in range(3):
        argv = task_argv(kind, 0.0, tmp_path / f"t{k}")
        subprocess.run(argv, check=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "GPU-x"})
        assert (tmp_path / f"t{k}").read_text() == "GPU-x"
    got = start_in_run(tmp_path)
    if kind == "sh":
        assert got is None
    else:
        assert got is not None and got["tasks"] == 3 and 0 < got["cpu_ms_p50"] < 1000
        assert got["preemptions_mean"] >= 0


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident memory from /proc")
def test_fresh_pages_are_held_touched_until_released() -> None:
    """`take` makes the memory resident (every page written) and says what a page cost; `release`
    gives it back; with 0 MB nothing is held."""
    assert FreshPages(0).take() is None
    fresh = FreshPages(128)
    before = _rss_mb()
    cost = fresh.take()
    assert cost is not None and cost > 0
    assert _rss_mb() - before >= 120
    fresh.release()
    assert _rss_mb() - before < 16

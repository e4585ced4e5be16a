"""The doorbell a node agent's watch sleeps on: it rings when a file appears in its directory."""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from pathlib import Path

import pytest

from gpuplan.executor import doorbell as doorbell_module
from gpuplan.executor.doorbell import Doorbell


def _bell(tmp_path: Path) -> Doorbell:
    bell = Doorbell(tmp_path / "ended", step_s=0.05)
    if not bell.active:
        pytest.skip(f"the doorbell does not ring here: {bell.why_not}")
    return bell


def test_a_file_created_while_waiting_ends_the_wait(tmp_path: Path) -> None:
    with _bell(tmp_path) as bell:
        bell.clear()
        threading.Timer(0.2, lambda: (tmp_path / "ended" / "x").touch()).start()
        t0 = time.monotonic()
        bell.wait(10.0)
        assert 0.15 <= time.monotonic() - t0 < 3.0


def test_a_file_created_before_the_wait_is_not_missed_and_clear_forgets_it(tmp_path: Path) -> None:
    """What appears between `clear` and `wait` (the caller's look) ends the wait at once; after the
    next `clear` the bell is quiet again until the timeout."""
    with _bell(tmp_path) as bell:
        bell.clear()
        (tmp_path / "ended" / "x").touch()
        t0 = time.monotonic()
        bell.wait(10.0)
        assert time.monotonic() - t0 < 1.0
        bell.clear()
        t0 = time.monotonic()
        bell.wait(0.3)
        assert time.monotonic() - t0 >= 0.25


def test_the_directory_removed_is_made_again_and_watched(tmp_path: Path) -> None:
    with _bell(tmp_path) as bell:
        shutil.rmtree(tmp_path / "ended")
        time.sleep(0.05)
        bell.clear()  # reads the watch's removal: makes the directory and watches it again
        assert bell.active and (tmp_path / "ended").is_dir()
        bell.clear()
        (tmp_path / "ended" / "y").touch()
        t0 = time.monotonic()
        bell.wait(10.0)
        assert time.monotonic() - t0 < 1.0


def test_without_inotify_the_bell_says_why_and_waits_a_step_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_libc(*_: object, **__: object) -> object:
        raise OSError("no libc here")

    monkeypatch.setattr(doorbell_module.ctypes, "CDLL", no_libc)
    bell = Doorbell(tmp_path / "ended", step_s=0.1)
    assert not bell.active and bell.why_not is not None and "no libc here" in bell.why_not
    bell.clear()
    t0 = time.monotonic()
    bell.wait(10.0)
    assert 0.05 <= time.monotonic() - t0 < 1.0


def test_a_descriptor_past_1023_still_rings(tmp_path: Path) -> None:
    """A busy agent may hold over a thousand descriptors; the bell's must still be waited on (plain
    select() refuses descriptors past 1023)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"at most {hard} descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with _bell(tmp_path) as bell:
            assert bell._fd > 1023
            bell.clear()
            (tmp_path / "ended" / "x").touch()
            t0 = time.monotonic()
            bell.wait(10.0)
            assert time.monotonic() - t0 < 1.0
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

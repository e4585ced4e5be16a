"""Ctrl-C and SIGTERM on `gpuplan solve`: the first returns the best plan so far, a second aborts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpuplan import Plan, parse_problem, verify
from tests.test_interrupt import hard_gap


def _solve_and_signal(tmp_path: Path, signals: list[int]) -> tuple[int, float, str, str]:
    """Start a minute's solve, send `signals` a second after its search began (each after the previous
    one was acknowledged on stderr); exit code, seconds from the first signal to the exit, stdout,
    stderr."""
    path = tmp_path / "gap.json"
    path.write_text(json.dumps(hard_gap()))
    cmd = [
        sys.executable,
        "-m",
        "gpuplan.cli",
        "-v",
        "solve",
        str(path),
        "--time-limit",
        "60",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    began, heard = threading.Event(), threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "warm start" in line:
                began.set()
            if "interrupted (" in line:
                heard.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert began.wait(60), "".join(lines)
    time.sleep(1.0)
    sent = time.monotonic()
    for k, sig in enumerate(signals):
        if k:
            assert heard.wait(30), "".join(lines)
        proc.send_signal(sig)
    out = proc.stdout.read() if proc.stdout else ""
    proc.wait(timeout=60)
    after = time.monotonic() - sent
    reader.join(10)
    return proc.returncode, after, out, "".join(lines)


@pytest.mark.clock
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_returns_the_best_plan(tmp_path: Path, sig: int) -> None:
    """Exit 0 within a few seconds of the signal, with a verified plan marked interrupted."""
    code, after, out, err = _solve_and_signal(tmp_path, [sig])
    assert code == 0, err
    assert after < 10, after
    assert "interrupted" in err
    plan = Plan.model_validate_json(out)
    assert plan.stats["interrupted"] is True
    verify(plan, parse_problem(hard_gap()))


@pytest.mark.clock
def test_second_signal_aborts(tmp_path: Path) -> None:
    """A second Ctrl-C ends the process at once with 130 and no plan."""
    code, after, out, err = _solve_and_signal(tmp_path, [signal.SIGINT, signal.SIGINT])
    assert code == 130, err
    assert after < 10
    assert out == "" and "aborted" in err

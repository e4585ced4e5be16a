"""The Ray executor benchmark's node sessions: what Ray starts for a node leads a session of its own."""

from __future__ import annotations

import os
import subprocess

import pytest

pytest.importorskip("ray", reason="the Ray benchmark needs the ray package: pip install 'gpuplan[ray]'")
import ray._private.services as services

from benchmarks.executor_ray_bench import node_sessions


def _session_of_started(cmd: list[str]) -> tuple[int, int]:
    """(pid, session id) of a process started through Ray's process starter."""
    proc = services.ConsolePopen(cmd, stdin=subprocess.PIPE)
    try:
        return proc.pid, os.getsid(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


@pytest.mark.parametrize("on", [True, False])
def test_node_sessions_start_ray_processes_in_sessions_of_their_own(on: bool) -> None:
    """Inside the context (on), a process Ray starts leads its own session; off, or once the context
    is left, it is in this process's session, as Ray starts it by itself."""
    base = services.ConsolePopen
    with node_sessions(on):
        pid, sid = _session_of_started(["cat"])
        assert (sid == pid) is on
    assert services.ConsolePopen is base
    pid, sid = _session_of_started(["cat"])
    assert sid == os.getsid(0) != pid

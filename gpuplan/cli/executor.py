"""`gpuplan run | status | stop | inventory`: the executor's subcommands (on this machine, or with
`--ray` across a Ray cluster; Ray is imported only then).

stdout carries JSON only (the run's result, the status, the inventory); progress goes to stderr.
Exit codes of `run`: 0 every placed task completed; 2 invalid input (one line naming the field);
3 the run ended with failed tasks; 4 the run was stopped before finishing; 1 internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpuplan.cli.jsonio import load_json, load_problem, validated
from gpuplan.errors import InputError

DEFAULT_STATE_DIR = ".gpuplan-run"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("GPUPLAN_STATE_DIR") or DEFAULT_STATE_DIR)


def _backend_factory(devices: str | None) -> Any:
    """A factory epoch -> backend, with missing drivers and bad sim files turned into InputError."""
    from gpuplan.executor.backends import load_backend
    from gpuplan.executor.devices import DeviceUnavailable
    from gpuplan.executor.sim import SimFleetError

    def make(epoch: float | None) -> Any:
        try:
            return load_backend(devices, epoch=epoch)
        except SimFleetError as exc:
            raise InputError(exc.path, exc.message) from None
        except DeviceUnavailable as exc:
            raise InputError("--devices", str(exc)) from None

    return make


def _sims_dir(devices: str | None) -> Path | None:
    """With --ray, --devices names a directory of simulated fleets, `<node>.json` per node."""
    if devices is None:
        return None
    path = Path(devices)
    if not path.is_dir():
        raise InputError(
            "--devices", f"with --ray, a directory of <node>.json simulated fleets (got {devices!r})"
        )
    return path.resolve()


def _ray_factory(args: argparse.Namespace, problem: Any, run: str) -> Any:
    """A factory epoch -> the cluster backend (one agent per node), errors turned into InputError."""
    from gpuplan.executor.devices import DeviceUnavailable
    from gpuplan.executor.raycluster import RayFleet, connect
    from gpuplan.executor.sim import SimFleetError

    sims = _sims_dir(args.devices)
    state_dir = _state_dir(args).resolve()
    try:
        connect(args.ray)  # before the state directory is touched: no cluster, nothing written
    except DeviceUnavailable as exc:
        raise InputError("--ray", str(exc)) from None

    def make(epoch: float | None) -> Any:
        try:
            return RayFleet(
                args.ray,
                nodes=[n.id for n in problem.nodes],
                run=run,
                sims=sims,
                state_dir=state_dir,
                epoch=epoch,
            )
        except SimFleetError as exc:
            raise InputError(exc.path, exc.message) from None
        except DeviceUnavailable as exc:
            raise InputError("--ray", str(exc)) from None

    return make


def cmd_run(args: argparse.Namespace) -> int:
    """Apply a plan on this machine; resume when the state directory holds the same run."""
    from gpuplan.executor.spec import RunSpec, Settings
    from gpuplan.models import Plan, Problem

    problem = load_problem(args.problem)
    if not isinstance(problem, Problem):
        raise InputError(
            "--problem", "the executor needs a fleet problem (nodes, GPUs, tasks), not the matrix form"
        )
    plan = validated(Plan, load_json(args.plan), "plan")
    spec = validated(RunSpec, load_json(args.commands), "commands")
    knobs = {
        "sample_interval_s": args.sample_interval,
        "poll_interval_s": args.poll_interval,
        "grace_s": args.grace,
        "replan_time_limit_s": args.replan_time_limit,
        "replan_solver": args.replan_solver,
        "migration_cost": args.migration_cost,
        "workers": args.workers,
        "seed": args.seed,
        "hour_s": args.hour_seconds,
    }
    settings = validated(Settings, {k: v for k, v in knobs.items() if v is not None}, "settings")
    if args.ray:
        from gpuplan.executor.runner import plan_hash

        factory = _ray_factory(args, problem, plan_hash(problem, plan, spec))
    else:
        factory = _backend_factory(args.devices)
    with _stdout_to_stderr(bool(args.ray)):
        result = _run(args, problem, plan, spec, settings, factory)
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    return result.exit_code


def _run(args: argparse.Namespace, problem: Any, plan: Any, spec: Any, settings: Any, factory: Any) -> Any:
    """Build the executor and run it to the end (its RunResult)."""
    from gpuplan.executor.runner import Executor, ExecutorInputError, progress_to_stderr

    try:
        ex = Executor(
            _state_dir(args),
            problem=problem,
            plan=plan,
            spec=spec,
            settings=settings,
            backend_factory=factory,
            progress=None if args.quiet else progress_to_stderr,
        )
    except ExecutorInputError as exc:
        raise InputError(exc.path, exc.message) from None
    try:
        return ex.run(install_signals=True)
    finally:
        ex.close()


@contextlib.contextmanager
def _stdout_to_stderr(on: bool) -> Iterator[None]:
    """While Ray runs in this process, its messages (node deaths, worker errors) go to stderr: stdout
    carries the JSON result alone. Descriptor level, so prints from any thread or library follow."""
    if not on:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the run's status as JSON."""
    from gpuplan.executor.queries import status
    from gpuplan.executor.state import ExecutorInputError

    try:
        out = status(_state_dir(args), events=args.events)
    except ExecutorInputError as exc:
        raise InputError(exc.path, exc.message) from None
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Ask the executor to stop its tasks and exit; wait for it up to --wait seconds."""
    from gpuplan.executor.queries import request_stop, status
    from gpuplan.executor.state import ExecutorInputError

    state_dir = _state_dir(args)
    try:
        out = request_stop(state_dir)
    except ExecutorInputError as exc:
        raise InputError(exc.path, exc.message) from None
    deadline = time.monotonic() + args.wait
    st = status(state_dir, events=0)
    while out["signalled"] and st["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        st = status(state_dir, events=0)
    out["state"] = st["state"]
    out["counts"] = st["counts"]
    print(f"gpuplan stop: run in {state_dir} is {st['state']}", file=sys.stderr)
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0 if st["state"] != "running" or not out["signalled"] else 1


def cmd_inventory(args: argparse.Namespace) -> int:
    """Print this machine's GPUs (with --ray, the whole cluster's) as a gpuplan problem (no tasks)."""
    from gpuplan.executor.devices import DeviceUnavailable, inventory

    if args.ray:
        from gpuplan.executor.raycluster import inventory as cluster_inventory
        from gpuplan.executor.sim import SimFleetError

        try:
            with _stdout_to_stderr(True):
                out = cluster_inventory(args.ray, _sims_dir(args.devices))
        except SimFleetError as exc:
            raise InputError(exc.path, exc.message) from None
        except DeviceUnavailable as exc:
            raise InputError("--ray", str(exc)) from None
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    backend = _backend_factory(args.devices)(None)
    try:
        out = inventory(backend)
    finally:
        backend.close()
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0


def add_commands(sub: Any) -> None:
    """Register run, status, stop and inventory on gpuplan's subparsers."""
    state_help = (
        f"state directory (journal, logs, metrics); default $GPUPLAN_STATE_DIR or {DEFAULT_STATE_DIR}"
    )
    r = sub.add_parser("run", help="apply a plan on this machine, watch the GPUs, re-plan on faults")
    r.add_argument("plan", help="plan JSON (from gpuplan solve)")
    r.add_argument("--problem", required=True, help="the problem the plan solves")
    r.add_argument(
        "--commands", required=True, help="commands JSON: task id -> argv, env, checkpoint_dir, ..."
    )
    r.add_argument("--devices", help="simulated fleet JSON (default: the real GPUs through NVML)")
    r.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="run across the nodes of a Ray cluster (auto, or HOST:PORT); --devices is then a directory"
        " of <node>.json simulated fleets",
    )
    r.add_argument("--state-dir", help=state_help)
    r.add_argument("--sample-interval", type=float, help="seconds between GPU samples (default 1)")
    r.add_argument("--poll-interval", type=float, help="seconds between lifecycle checks (default 0.05)")
    r.add_argument(
        "--grace", type=float, help="seconds from SIGTERM to SIGKILL when stopping a task (default 10)"
    )
    r.add_argument("--replan-time-limit", type=float, help="optimizer seconds per re-plan (default 5)")
    r.add_argument("--replan-solver", help="auto, greedy or cpsat (default auto)")
    r.add_argument("--migration-cost", type=float, help="migration cost that keeps running tasks in place")
    r.add_argument("--workers", type=int, help="optimizer threads for re-plans")
    r.add_argument("--seed", type=int)
    r.add_argument(
        "--hour-seconds",
        type=float,
        help="wall-clock seconds per planned hour: releases and re-plans of a scheduled plan (default 3600)",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="print the executor's run status as JSON")
    s.add_argument("--state-dir", help=state_help)
    s.add_argument("--events", type=int, default=20, help="how many recent events to include")
    s.set_defaults(func=cmd_status)
    st = sub.add_parser("stop", help="stop the executor's tasks and end the run (resumable)")
    st.add_argument("--state-dir", help=state_help)
    st.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the executor to stop")
    st.set_defaults(func=cmd_stop)
    inv = sub.add_parser("inventory", help="print this machine's GPUs as a gpuplan problem (JSON)")
    inv.add_argument("--devices", help="simulated fleet JSON instead of NVML")
    inv.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="print every node of a Ray cluster (auto, or HOST:PORT); --devices is then a directory of"
        " <node>.json simulated fleets",
    )
    inv.set_defaults(func=cmd_inventory)

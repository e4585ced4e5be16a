"""MILP backend through PuLP: CBC (bundled) with a wall-clock limit that gpuplan enforces itself.

CBC can overrun its own `-sec` limit (it does not check it during the root LP of large models),
so CBC runs as a child process that gpuplan interrupts (SIGINT, then SIGKILL) at the deadline or
when the caller stops the solve. Other PuLP solvers run in a worker thread that is abandoned then.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gpuplan.interrupt import POLL_S, owned, past, requested
from gpuplan.program.gap import DROPPED, Program
from gpuplan.program.solution import RawSolution, SolveParams, int_bound_to_user, proven_status
from gpuplan.status import Status

_GRACE_S = 0.5
_BEST_POSSIBLE = re.compile(r"best possible (-?[0-9.eE+]+)")
_LOWER_BOUND = re.compile(r"Lower bound:\s+(-?[0-9.eE+]+)")


def cbc_thread_args(workers: int) -> list[str]:
    """CBC's thread option: none for one worker. `-threads 1` still runs the tree search in one
    extra thread, and CBC 2.10 then sometimes deadlocks on start (main thread joining a worker that
    waits on its condition variable), seen about once in 20-40 solves of a 4-task program."""
    return ["-threads", str(workers)] if workers > 1 else []


def build_model(program: Program, hint: np.ndarray | None) -> tuple[Any, list[Any], dict[int, Any]]:
    """The integer program as a PuLP model (integer costs and loads, as CP-SAT sees them)."""
    import pulp

    prob = pulp.LpProblem("gpuplan", pulp.LpMinimize)
    ts, gs = np.nonzero(program.eligible)
    x = [pulp.LpVariable(f"x{k}", cat=pulp.LpBinary) for k in range(ts.size)]
    drop = {int(t): pulp.LpVariable(f"d{t}", cat=pulp.LpBinary) for t in np.flatnonzero(program.optional)}
    terms = [(x[k], float(c)) for k, c in enumerate(program.cost_int[ts, gs].tolist())]
    terms += [(d, float(program.penalty_int[t])) for t, d in drop.items()]
    prob += pulp.LpAffineExpression(terms)
    by_task: list[list[int]] = [[] for _ in range(program.n_tasks)]
    by_gpu: list[list[int]] = [[] for _ in range(program.n_gpus)]
    for k, (t, g) in enumerate(zip(ts.tolist(), gs.tolist(), strict=True)):
        by_task[t].append(k)
        by_gpu[g].append(k)
    for t in range(program.n_tasks):
        e = [(x[k], 1.0) for k in by_task[t]] + ([(drop[t], 1.0)] if t in drop else [])
        prob += pulp.LpConstraint(pulp.LpAffineExpression(e), pulp.LpConstraintEQ, f"one{t}", 1)
    for g in range(program.n_gpus):
        ks = by_gpu[g]
        for r in range(program.n_resources):
            coefs = program.load_int[r, ts[ks], g]
            cap = float(program.capacity_int[r, g])
            if not ks or float(coefs.sum()) <= cap:
                continue
            # Rows divided by their capacity: integer loads reach 2^40, and CBC's tolerances are
            # absolute, so at that scale it took 0.002 of a task for 0 (a fractional "optimum").
            unit = cap if cap > 0 else float(coefs.max())
            e = pulp.LpAffineExpression(
                [(x[k], float(c) / unit) for k, c in zip(ks, coefs.tolist(), strict=True)]
            )
            prob += pulp.LpConstraint(e, pulp.LpConstraintLE, f"cap{r}_{g}", cap / unit)
    if hint is not None:
        for k in range(ts.size):
            x[k].setInitialValue(1 if hint[ts[k]] == gs[k] else 0)
        for t, d in drop.items():
            d.setInitialValue(1 if hint[t] == DROPPED else 0)
    return prob, x, drop


def _wait_until(poll: Callable[[], int | None], deadline: float) -> bool:
    """Wait until `poll()` gives an exit code (True), or until the deadline or a stop (False)."""
    while poll() is None:
        if past(deadline):
            return False
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    return True


def _wait_cbc(proc: subprocess.Popen[bytes], deadline: float) -> str:
    """Wait for CBC until the deadline or a stop, then SIGINT (it writes its best solution), then
    SIGKILL after a grace period; returns what had to be done ("" when CBC finished by itself)."""
    if _wait_until(proc.poll, deadline):
        return ""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed " + (
            "after the stop" if requested() else "at the deadline (CBC overran its time limit)"
        )
    return "interrupted " + ("by the caller" if requested() else "at the deadline")


def _read_assign(program: Program, x: list[Any]) -> np.ndarray:
    ts, gs = np.nonzero(program.eligible)
    vals = np.array([v.varValue or 0.0 for v in x])
    chosen = vals > 0.5
    assign = np.full(program.n_tasks, DROPPED, dtype=np.int64)
    assign[ts[chosen]] = gs[chosen]
    return assign


class MilpSolver:
    """Exact backend on PuLP; CBC by default, or any PuLP solver name (e.g. 'HiGHS_CMD')."""

    name = "milp"

    def __init__(self, pulp_solver: str = "PULP_CBC_CMD") -> None:
        self.pulp_solver = pulp_solver

    def solve(self, program: Program, params: SolveParams) -> RawSolution:
        started = time.monotonic()
        prob, x, _ = build_model(program, params.hint)
        if self.pulp_solver == "PULP_CBC_CMD":
            sol = self._solve_cbc(program, prob, x, params, started)
        else:
            sol = self._solve_other(program, prob, x, params, started)
        return sol

    def _solve_cbc(
        self, program: Program, prob: Any, x: list[Any], params: SolveParams, started: float
    ) -> RawSolution:
        import pulp

        cmd = pulp.PULP_CBC_CMD(msg=False)
        with tempfile.TemporaryDirectory(prefix="gpuplan-cbc-") as tmp:
            mps, sol_path, mst, log_path = (
                str(Path(tmp) / n) for n in ("m.mps", "m.sol", "m.mst", "cbc.log")
            )
            vs, vnames, cnames, _ = prob.writeMPS(mps, rename=1)
            args = [cmd.path, mps]
            # Only a feasible start helps; CBC 2.10 wrote no log or solution for an infeasible
            # start without preprocessing (tests/test_properties.py found it).
            if params.hint is not None and program.is_feasible(params.hint):
                cmd.writesol(mst, prob, vs, vnames, cnames)
                # CBC's preprocessing with a MIP start can end "Optimal" above the optimum (a 4-task
                # horizon case in tests/test_regressions.py); without preprocessing it does not.
                args += ["-mips", mst, "-preprocess", "off"]
            built = time.monotonic() - started
            limit = max(0.1, params.remaining() - _GRACE_S)
            args += [
                "-sec",
                f"{limit:.2f}",
                *cbc_thread_args(params.workers),
                "-randomSeed",
                str(params.seed + 1),
                "-solve",
                "-printingOptions",
                "all",
                "-solution",
                sol_path,
            ]
            with open(log_path, "w") as log:
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                with owned(proc):
                    killed = _wait_cbc(proc, params.deadline)
            text = Path(log_path).read_text(errors="replace")
            stats: dict[str, bool | int | float | str] = {"build_s": round(built, 4)}
            bound_int = None
            for pattern in (_LOWER_BOUND, _BEST_POSSIBLE):
                found = pattern.findall(text)
                if found:
                    bound_int = float(found[-1])
                    break
            if not os.path.exists(sol_path) or os.path.getsize(sol_path) == 0:
                sol = RawSolution.empty(program, Status.UNKNOWN, f"CBC {killed or 'gave no solution'}")
                sol.stats = stats
                return sol
            status, values, *_ = cmd.readsol_MPS(sol_path, prob, vs, vnames, cnames)
            first = Path(sol_path).read_text(errors="replace").splitlines()[0:1]
        prob.assignVarsVals(values)
        head = first[0] if first else ""
        stats["cbc_status"] = head[:80]
        if head.startswith("Infeasible") or status == pulp.LpStatusInfeasible:
            return RawSolution.empty(program, Status.INFEASIBLE, "CBC: infeasible")
        assign = _read_assign(program, x)
        if not program.is_feasible(assign):
            sol = RawSolution.empty(
                program, Status.UNKNOWN, f"CBC returned no integer solution ({head[:60]})"
            )
            sol.stats = stats
            return sol
        optimal = head.startswith("Optimal") and not killed
        obj = program.objective(assign)
        bound = None
        if optimal:
            bound = int_bound_to_user(program, program.objective_int(assign))
        elif bound_int is not None:
            bound = int_bound_to_user(program, bound_int)
        st = proven_status(program, obj) if optimal else Status.FEASIBLE
        return RawSolution(assign, st, obj, bound, [(time.monotonic() - started, obj)], stats, killed)

    def _solve_other(
        self, program: Program, prob: Any, x: list[Any], params: SolveParams, started: float
    ) -> RawSolution:
        import pulp

        solver = pulp.getSolver(
            self.pulp_solver,
            msg=False,
            timeLimit=max(1.0, params.remaining() - _GRACE_S),
            warmStart=params.hint is not None,
        )
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["status"] = prob.solve(solver)
            except Exception as exc:  # reported below, not swallowed
                box["error"] = exc

        th = threading.Thread(target=run, daemon=True)
        th.start()
        _wait_until(lambda: None if th.is_alive() else 0, params.deadline)
        if th.is_alive():
            return RawSolution.empty(program, Status.UNKNOWN, f"{self.pulp_solver} abandoned at the deadline")
        if "error" in box:
            raise RuntimeError(f"{self.pulp_solver} failed: {box['error']}") from box["error"]
        if box["status"] == pulp.LpStatusInfeasible:
            return RawSolution.empty(program, Status.INFEASIBLE, f"{self.pulp_solver}: infeasible")
        assign = _read_assign(program, x)
        if not program.is_feasible(assign):
            return RawSolution.empty(program, Status.UNKNOWN, f"{self.pulp_solver}: no integer solution")
        optimal = box["status"] == pulp.LpStatusOptimal and prob.sol_status == pulp.LpSolutionOptimal
        obj = program.objective(assign)
        bound = int_bound_to_user(program, program.objective_int(assign)) if optimal else None
        st = proven_status(program, obj) if optimal else Status.FEASIBLE
        return RawSolution(assign, st, obj, bound, [(time.monotonic() - started, obj)])

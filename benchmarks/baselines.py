"""Plain baselines for GAP instances: the model a user would write without gpuplan.

* cpsat: OR-Tools CP-SAT, one Boolean per (agent, job), exactly one agent per job, one capacity
  constraint per agent, minimise total cost. No hint, no parameter tuning beyond the time limit,
  worker count and seed.
* cbc: the same model in PuLP, solved by CBC (`PULP_CBC_CMD(timeLimit=T, threads=W, msg=False)`).

Each baseline runs as its own process, reading the same matrix JSON file as `gpuplan solve`:

    python -m benchmarks.baselines {cpsat|cbc} FILE TIME_LIMIT WORKERS [SEED]

and prints one JSON object on stdout: method, status, objective, bound, solve_s (time inside the
process, for information), assignment (0-based agent of each job, or null) and, for CBC, detail
(CBC's own "Result - ..." line). The caller times the
whole process and kills it if it overruns (see `run_baseline`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

METHODS = ("cpsat", "cbc")


def kill_after(time_limit: float) -> float:
    """Seconds after which a run is killed: max(2 T, T + 30)."""
    return max(2.0 * time_limit, time_limit + 30.0)


def read_matrix(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A gpuplan matrix JSON (tasks x GPUs) -> agent-major (cost, load, capacity)."""
    with open(path, encoding="utf-8") as fh:
        mat = json.load(fh)["matrix"]
    cost = np.array(mat["cost"], dtype=np.int64).T
    load = np.array(mat["load"], dtype=np.int64).T
    cap = np.array(mat["capacity"], dtype=np.int64)
    return cost, load, cap


def _result(status: str, objective, bound, t0: float, assignment) -> dict:
    return {
        "status": status,
        "objective": None if objective is None else float(objective),
        "bound": None if bound is None or not math.isfinite(bound) else float(bound),
        "solve_s": round(time.perf_counter() - t0, 3),
        "assignment": None if assignment is None else [int(v) for v in assignment],
    }


def solve_cpsat(cost, load, cap, time_limit: float, workers: int, seed: int) -> dict:
    """Plain CP-SAT model; returns the result dict."""
    from ortools.sat.python import cp_model

    t0 = time.perf_counter()
    m, n = cost.shape
    model = cp_model.CpModel()
    x = [[model.NewBoolVar(f"x{i}_{j}") for j in range(n)] for i in range(m)]
    for j in range(n):
        model.AddExactlyOne(x[i][j] for i in range(m))
    for i in range(m):
        model.Add(sum(int(load[i, j]) * x[i][j] for j in range(n)) <= int(cap[i]))
    model.Minimize(sum(int(cost[i, j]) * x[i][j] for i in range(m) for j in range(n)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    st = solver.Solve(model)
    status = {
        cp_model.OPTIMAL: "optimal",
        cp_model.FEASIBLE: "feasible",
        cp_model.INFEASIBLE: "infeasible",
        cp_model.UNKNOWN: "unknown",
    }.get(st, "error")
    if status in ("optimal", "feasible"):
        assign = [next(i for i in range(m) if solver.BooleanValue(x[i][j])) for j in range(n)]
        return _result(status, solver.ObjectiveValue(), solver.BestObjectiveBound(), t0, assign)
    bound = solver.BestObjectiveBound() if status == "unknown" else None
    return _result(status, None, bound, t0, None)


def _cbc_lower_bound(log: str) -> float | None:
    """CBC's final 'Lower bound:' line (only printed by some CBC builds/outcomes)."""
    found = re.findall(r"^Lower bound:\s*(-?[0-9.eE+-]+)", log, flags=re.MULTILINE)
    if not found:
        return None
    try:
        return float(found[-1])
    except ValueError:
        return None


def solve_cbc(cost, load, cap, time_limit: float, workers: int) -> dict:
    """Plain PuLP + CBC model; returns the result dict."""
    import pulp

    t0 = time.perf_counter()
    m, n = cost.shape
    prob = pulp.LpProblem("gap", pulp.LpMinimize)
    x = [[prob.add_variable(f"x{i}_{j}", cat="Binary") for j in range(n)] for i in range(m)]
    prob += pulp.lpSum(int(cost[i, j]) * x[i][j] for i in range(m) for j in range(n))
    for j in range(n):
        prob += pulp.lpSum(x[i][j] for i in range(m)) == 1
    for i in range(m):
        prob += pulp.lpSum(int(load[i, j]) * x[i][j] for j in range(n)) <= int(cap[i])
    with tempfile.TemporaryDirectory(prefix="gapcbc") as tmp:
        log_path = Path(tmp) / "cbc.log"
        with warnings.catch_warnings():
            # PuLP 3.3 announces that PULP_CBC_CMD (the CBC binary bundled with PuLP) goes away in
            # PuLP 4; it is still the plain choice a user gets with `pip install pulp`.
            warnings.simplefilter("ignore", DeprecationWarning)
            cmd = pulp.PULP_CBC_CMD(timeLimit=time_limit, threads=workers, msg=False, logPath=str(log_path))
        prob.solve(cmd)
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    bound = _cbc_lower_bound(log)
    result = re.findall(r"^Result - (.*)$", log, flags=re.MULTILINE)
    detail = f"CBC: {result[-1].strip()}" if result else "CBC: no result line in its log"
    # sol_status: 1 optimal, 2 integer feasible (stopped early), 0 no solution, -1 infeasible.
    sol = prob.sol_status
    if sol in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        status = "optimal" if sol == pulp.LpSolutionOptimal else "feasible"
        assign = []
        for j in range(n):
            vals = [x[i][j].varValue or 0.0 for i in range(m)]
            assign.append(int(np.argmax(vals)))
        obj = pulp.value(prob.objective)
        if status == "optimal" and bound is None:
            bound = obj  # CBC prints no bound when it claims optimality; the claim is the bound
        return {**_result(status, obj, bound, t0, assign), "detail": detail}
    status = "infeasible" if sol == pulp.LpSolutionInfeasible else "unknown"
    return {**_result(status, None, bound, t0, None), "detail": detail}


def run_baseline(method: str, matrix_file: str, time_limit: float, workers: int, seed: int) -> dict:
    """Run one baseline as a subprocess; time it as a whole and kill it after `kill_after(T)` s.

    Returns the child's result plus `wall_s` (whole process) and `note`; a killed or crashed run
    has status 'killed' or 'error' and no solution."""
    cmd = [sys.executable, "-m", "benchmarks.baselines", method, str(matrix_file)]
    cmd += [str(time_limit), str(workers), str(seed)]
    return run_timed(cmd, time_limit, cwd=Path(__file__).resolve().parent.parent)


class _PeakWatch:
    """The peak resident memory (VmHWM) of one process, read every 0.1 s until it exits: its value
    at the last read, so a peak in the last 0.1 s may be missed."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.mb: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            try:
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.mb = int(line.split()[1]) / 1024
            except (OSError, ValueError, IndexError):
                return
            self.done.wait(0.1)

    def stop(self) -> float | None:
        self.done.set()
        self.thread.join()
        return None if self.mb is None else round(self.mb, 1)


def run_timed(
    cmd: list[str], time_limit: float, cwd: Path | None = None, kill_s: float | None = None
) -> dict:
    """Run a command that prints one JSON object; kill its process group after kill_after(T) s
    (or after `kill_s` s when given)."""
    deadline = kill_after(time_limit) if kill_s is None else kill_s
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        start_new_session=True,  # own process group, so a CBC child process is killed with it
    )
    peak = _PeakWatch(proc.pid)
    try:
        out, err = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        wall = time.perf_counter() - t0
        return {
            "status": "killed",
            "objective": None,
            "bound": None,
            "assignment": None,
            "wall_s": round(wall, 3),
            "peak_mb": peak.stop(),
            "rc": None,
            "note": f"killed after {wall:.0f} s (limit {time_limit:g} s), no solution",
        }
    wall = time.perf_counter() - t0
    res: dict = {}
    text = out.strip()
    if text:
        try:
            res = json.loads(text)
        except json.JSONDecodeError:
            res = {}
    if not isinstance(res, dict) or "status" not in res:
        tail = " | ".join(err.strip().splitlines()[-2:])[:300]
        res = {"status": "error", "objective": None, "bound": None, "note": f"rc {proc.returncode}: {tail}"}
    res["wall_s"] = round(wall, 3)
    res["peak_mb"] = peak.stop()
    res["rc"] = proc.returncode
    res.setdefault("note", "")
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (4, 5) or argv[0] not in METHODS:
        print(
            "usage: python -m benchmarks.baselines {cpsat|cbc} MATRIX.json TIME_LIMIT WORKERS [SEED]",
            file=sys.stderr,
        )
        return 2
    method, path, limit, workers = argv[0], argv[1], float(argv[2]), int(argv[3])
    seed = int(argv[4]) if len(argv) == 5 else 0
    cost, load, cap = read_matrix(path)
    if method == "cpsat":
        res = solve_cpsat(cost, load, cap, limit, workers, seed)
    else:
        res = solve_cbc(cost, load, cap, limit, workers)
    res = {"method": method, **res}
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

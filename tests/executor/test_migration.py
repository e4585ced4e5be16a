"""Hot migration: a GPU that fails or overheats mid-run; its tasks move, the others stay put."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from exec_helpers import commands, load_problem, make_executor, records, run, sim_fleet, solve

from gpuplan.executor.devices import Reading


def _events(tmp_path: Path) -> list[tuple[str, str | None, str | None, str]]:
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    return db.execute("SELECT kind, task, gpu, reason FROM events ORDER BY id").fetchall()


def test_failed_gpu_tasks_move_and_complete_elsewhere(
    tmp_path: Path, out: Path, uuids: dict[str, str]
) -> None:
    problem = load_problem()
    plan = solve(problem)
    on_g2 = sorted(a.task for a in plan.assignments if "g2" in a.gpus)
    assert len(on_g2) == 2
    ckpt = {a.task: {"checkpoint_dir": f"ckpt/{a.task}"} for a in plan.assignments}
    spec = commands(plan, out, sleep=1.2, **ckpt)
    fleet = sim_fleet([{"at_s": 0.8, "gpu": "g2", "fail": True}])
    result = run(make_executor(tmp_path, problem, plan, spec, fleet))
    assert result.exit_code == 0, result.tasks
    assert result.counts == {"done": 8}
    for a in plan.assignments:
        done = records(out, a.task, "done")
        assert len(done) == 1, a.task
        starts = records(out, a.task, "starts")
        if a.task in on_g2:
            # stopped on g2, restarted on a healthy GPU, found its checkpoint from the first attempt
            assert len(starts) == 2
            assert done[0]["cvd"] != uuids["g2"]
            assert done[0]["checkpoint"] == f"attempt 1 on {uuids['g2']}"
            assert result.tasks[a.task]["moves"] == 1
        else:
            assert len(starts) == 1, f"{a.task} on a healthy GPU was restarted"
    events = _events(tmp_path)
    kinds = [e[0] for e in events]
    fault = kinds.index("fault")
    assert events[fault][2] == "g2" and "GPU is lost" in events[fault][3]
    stops = [e for e in events[fault:] if e[0] == "stop"]
    assert sorted(e[1] for e in stops) == on_g2 and all("g2" in e[3] for e in stops)
    assert "replan" in kinds[fault:]
    moved = [e for e in events if e[0] == "move"]
    assert sorted(e[1] for e in moved) == on_g2
    # the leases held on the failed GPU end failed; all others released
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    states = db.execute("SELECT gpu, state FROM leases").fetchall()
    assert {s for g, s in states if g == "g2"} == {"failed"}
    assert {s for g, s in states if g != "g2"} == {"released"}
    assert db.execute("SELECT state FROM gpus WHERE id='g2'").fetchone()[0] == "failed"


def test_overheated_gpu_tasks_move_at_once_when_there_is_room(
    tmp_path: Path, out: Path, uuids: dict[str, str]
) -> None:
    problem = load_problem(task={"gpu_share": 0.25})
    plan = solve(problem)
    by_gpu: dict[str, list[str]] = {}
    for a in plan.assignments:
        by_gpu.setdefault(a.gpus[0], []).append(a.task)
    hot = max(by_gpu, key=lambda g: len(by_gpu[g]))
    spec = commands(plan, out, sleep=1.2)
    fleet = sim_fleet([{"at_s": 0.8, "gpu": hot, "temperature_c": 95}])
    result = run(make_executor(tmp_path, problem, plan, spec, fleet))
    assert result.counts == {"done": 8}, result.tasks
    for a in plan.assignments:
        done = records(out, a.task, "done")
        assert len(done) == 1
        if a.task in by_gpu[hot]:
            assert done[0]["cvd"] != uuids[hot]
            assert len(records(out, a.task, "starts")) == 2
        else:
            assert len(records(out, a.task, "starts")) == 1
    events = _events(tmp_path)
    fault = next(e for e in events if e[0] == "fault")
    assert fault[2] == hot and "95 °C is over the limit of 85 °C" in fault[3]
    replans = [e for e in events if e[0] == "replan"]
    assert len(replans) == 1 and "left out" in replans[0][3] and "optional" not in replans[0][3]
    assert not [e for e in events if e[0] == "wait"]


def test_overheated_gpu_is_used_again_once_cool(tmp_path: Path, out: Path) -> None:
    """g2 overheats, its tasks wait (no room elsewhere), g2 cools: they go back to it."""
    problem = load_problem()
    plan = solve(problem)
    spec = commands(plan, out, sleep=2.0)
    fleet = sim_fleet(
        [{"at_s": 0.8, "gpu": "g2", "temperature_c": 90}, {"at_s": 1.2, "gpu": "g2", "temperature_c": 70}]
    )
    result = run(make_executor(tmp_path, problem, plan, spec, fleet))
    assert result.counts == {"done": 8}
    kinds = [e[0] for e in _events(tmp_path)]
    assert kinds.index("fault") < kinds.index("wait") < kinds.index("recover")
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    later = db.execute("SELECT gpus FROM attempts WHERE n = 2").fetchall()
    assert later and all(g == '["g2"]' for (g,) in later)


def test_several_readings_of_a_gpu_in_one_read_are_judged_in_order(tmp_path: Path, out: Path) -> None:
    """A cluster backend gives the readings its nodes took since the last sample: g2 over the limit
    and then cooled, in one read, is excluded and then used again (not left excluded on a reading
    older than the last), and the other way round ends excluded."""
    problem = load_problem()
    plan = solve(problem)
    ex = make_executor(tmp_path, problem, plan, commands(plan, out, sleep=0.1), sim_fleet())
    try:
        now = time.time()
        temps = [[90.0, 70.0], [70.0, 95.0]]  # g2 in each read
        batches = [[Reading("g2", now + k, True, temperature_c=c) for k, c in enumerate(t)] for t in temps]
        ex.backend.read = lambda: batches.pop(0)  # type: ignore[method-assign]
        ex._sample()
        assert "g2" not in ex.excluded
        kinds = [(e[0], e[2]) for e in _events(tmp_path) if e[0] in ("fault", "recover")]
        assert kinds == [("fault", "g2"), ("recover", "g2")]
        ex._sample()
        assert ex.excluded["g2"][0] == "hot"
        metrics = (tmp_path / "state" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["temperature_c"] for line in metrics] == [90.0, 70.0, 70.0, 95.0]
    finally:
        ex.close()

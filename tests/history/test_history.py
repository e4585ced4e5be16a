"""History: attempts read from a run's journal (read-only) and joined with its GPU samples."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from runs import make_run

from gpuplan.cli import main
from gpuplan.errors import InputError
from gpuplan.history import COLUMNS, load_history, to_csv


def _ramp(gpu: str, tasks: list[str], t0: float, t1: float, p0: float, p1: float) -> list[dict]:
    """Samples every second with power rising linearly from p0 to p1."""
    n = int(t1 - t0)
    return [
        {
            "gpu": gpu,
            "t": t0 + k,
            "power_w": p0 + (p1 - p0) * k / n,
            "utilization": 50.0 + k,
            "memory_used_gb": float(k),
            "temperature_c": 40.0 + k,
            "tasks": tasks,
        }
        for k in range(n + 1)
    ]


def test_times_are_hours_on_the_runs_scale_and_costs_follow(tmp_path: Path) -> None:
    """t_running / t_end become hours from the epoch via hour_s; cost = hours x share x price x GPUs."""
    state = make_run(
        tmp_path / "s",
        [
            {"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 5.0, "t_end": 25.0},
            {"task": "t2", "gpus": ["b0"], "state": "succeeded", "t_running": 0.0, "t_end": 40.0},
        ],
        hour_s=10.0,
    )
    r1, r2 = load_history([state])
    assert (r1.start_h, r1.end_h, r1.duration_h) == pytest.approx((0.5, 2.5, 2.0))
    assert r1.gpu_type == "A" and r1.node == "n0" and r1.group == "train"
    assert r1.declared_h == pytest.approx(2.0)  # work 4 / speed 2
    assert r1.cost == pytest.approx(2.0 * 4.0)
    assert r2.cost == pytest.approx(4.0 * 0.5 * 1.0)  # share 0.5
    assert r2.declared_h == pytest.approx(4.0)


def test_energy_is_the_integral_of_power_split_between_tasks(tmp_path: Path) -> None:
    """A linear power ramp integrates exactly; a GPU shared by two tasks gives each half."""
    samples = _ramp("a0", ["t1"], 0, 20, 100.0, 300.0) + _ramp("b0", ["t2", "t3"], 0, 20, 200.0, 200.0)
    state = make_run(
        tmp_path / "s",
        [
            {"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 5.0, "t_end": 15.0},
            {"task": "t2", "gpus": ["b0"], "state": "succeeded", "t_running": 5.0, "t_end": 15.0},
        ],
        samples,
    )
    r1, r2 = load_history([state])
    # power(t) = 100 + 10 t on [5, 15]: ∫ = 10 x 100 + 5 x (225 - 25) = 2000 J
    assert r1.energy_j == pytest.approx(2000.0)
    assert r2.energy_j == pytest.approx(200.0 / 2 * 10)
    assert r1.utilization_mean == pytest.approx(60.0)  # 50 + t over [5, 15]: mean 60
    assert r1.utilization_peak == pytest.approx(65.0)
    assert r1.memory_peak_gb == pytest.approx(15.0)
    assert r1.temperature_peak_c == pytest.approx(55.0)
    assert r1.samples == 11


def test_an_attempt_between_two_samples_is_interpolated(tmp_path: Path) -> None:
    """Sparse samples: an attempt shorter than the interval still gets the interpolated power."""
    samples = [{"gpu": "a0", "t": 0.0, "power_w": 100.0}, {"gpu": "a0", "t": 10.0, "power_w": 200.0}]
    state = make_run(
        tmp_path / "s",
        [{"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 4.0, "t_end": 6.0}],
        samples,
    )
    (r,) = load_history([state])
    assert r.energy_j == pytest.approx(150.0 * 2)
    assert r.samples == 0


def test_reading_never_writes_the_journal(tmp_path: Path) -> None:
    """The journal file is opened read-only: its bytes and modification time stay as they were."""
    state = make_run(
        tmp_path / "s", [{"task": "t1", "gpus": ["a0"], "state": "failed", "t_running": 1.0, "t_end": 2.0}]
    )
    path = state / "journal.sqlite"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    load_history([state])
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_resumed_marks_a_checkpointed_retry(tmp_path: Path) -> None:
    """An attempt after one that ran, for a task with a checkpoint directory, may have resumed."""
    state = make_run(
        tmp_path / "s",
        [
            {"task": "t1", "gpus": ["a0"], "state": "stopped", "t_running": 0.0, "t_end": 5.0},
            {"task": "t1", "gpus": ["b0"], "state": "succeeded", "t_running": 6.0, "t_end": 9.0, "n": 2},
            {"task": "t2", "gpus": ["a0"], "state": "failed", "t_running": 0.0, "t_end": 5.0},
            {"task": "t2", "gpus": ["a0"], "state": "succeeded", "t_running": 6.0, "t_end": 9.0, "n": 2},
        ],
        spec={"tasks": {"t1": {"argv": ["x"], "checkpoint_dir": "ck"}, "t2": {"argv": ["x"]}}},
    )
    rows = load_history([state])
    assert [r.resumed for r in rows] == [False, True, False, False]
    assert rows[1].gpu_type == "B"


def test_csv_has_one_header_and_a_line_per_attempt(tmp_path: Path) -> None:
    """CSV export: the COLUMNS header, None as an empty cell."""
    state = make_run(
        tmp_path / "s",
        [{"task": "t3", "gpus": ["b0"], "state": "lost", "t_running": 1.0, "t_end": None}],
    )
    rows = list(csv.reader(io.StringIO(to_csv(load_history([state])))))
    assert tuple(rows[0]) == COLUMNS
    rec = dict(zip(rows[0], rows[1], strict=True))
    assert rec["state"] == "lost" and rec["end_h"] == "" and rec["declared_h"] == "3.0"


def test_not_a_state_directory_is_an_input_error(tmp_path: Path) -> None:
    """A path without a journal names itself."""
    with pytest.raises(InputError, match="no run here"):
        load_history([tmp_path])
    with pytest.raises(InputError, match="no such state directory"):
        load_history([tmp_path / "nope"])


def test_cli_history_json_csv_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gpuplan history` prints JSON (or CSV); a wrong path exits 2 with one line."""
    state = make_run(
        tmp_path / "s", [{"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 1.0, "t_end": 3.0}]
    )
    assert main(["history", str(state)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["task"] == "t1"
    assert main(["history", str(state), "--csv"]) == 0
    assert capsys.readouterr().out.startswith("run,task,group")
    assert main(["history", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing: no such state directory" in err[0]


def test_many_runs_pool_and_stay_apart(tmp_path: Path) -> None:
    """Records of several state directories come run by run, each naming its own directory."""
    one = [{"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 0.0, "t_end": 20.0}]
    a, b = make_run(tmp_path / "a", one), make_run(tmp_path / "b", one + one)
    rows = load_history([a, b])
    assert [r.run for r in rows] == [str(a), str(b), str(b)]


def test_a_broken_sample_line_names_the_file_and_line(tmp_path: Path) -> None:
    """A metrics line without gpu or t is an InputError at metrics.jsonl:LINE."""
    state = make_run(
        tmp_path / "s",
        [{"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 0.0, "t_end": 20.0}],
        [{"gpu": "a0", "t": 1.0, "power_w": 5.0}],
    )
    with open(state / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"power_w": 3}\n')
    with pytest.raises(InputError, match=r"metrics.jsonl:2: not a GPU sample"):
        load_history([state])
    assert len(load_history([state], metrics=False)) == 1

"""Applying a calibration: which value each task gets, the plan's notes, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan
from gpuplan.calibration import Calibration, DurationFit, SpeedFit, apply_calibration
from gpuplan.cli import main
from gpuplan.errors import InputError


def _problem() -> gpuplan.Problem:
    return gpuplan.Problem.model_validate(
        {
            "gpu_types": [
                {"name": "A", "memory_gb": 80, "speed": 2.0, "cost_per_hour": 4.0},
                {"name": "B", "memory_gb": 24, "speed": 1.0, "cost_per_hour": 1.0},
            ],
            "nodes": [{"id": "n0", "gpu_counts": {"A": 2, "B": 2}}],
            "tasks": [
                {"id": "train", "group": "train", "work_h": 4.0},
                {"id": "other", "work_h": 2.0, "duration_h": {"B": 3.0}},
                {"id": "data", "group": "train", "work_h": 4.0, "input_gb": 1.0},
            ],
        }
    )


def _cal(n: int = 5) -> Calibration:
    return Calibration(
        attempts=2 * n,
        used=2 * n,
        speeds=[
            SpeedFit(
                gpu_type="A",
                factor=0.5,
                log_sigma=0.1,
                log_se=0.05,
                low=0.45,
                high=0.55,
                observations=n,
                groups=1,
            ),
            SpeedFit(
                gpu_type="B",
                factor=2.0,
                log_sigma=0.1,
                log_se=0.05,
                low=1.8,
                high=2.2,
                observations=2,
                groups=1,
            ),
        ],
        durations=[
            DurationFit(
                group="train",
                gpu_type="B",
                duration_h=7.0,
                log_sigma=0.1,
                log_se=0.05,
                low_h=6.5,
                high_h=7.5,
                observations=n,
            ),
            DurationFit(
                group="train",
                gpu_type="A",
                duration_h=1.0,
                log_sigma=0.1,
                log_se=0.05,
                low_h=0.9,
                high_h=1.1,
                observations=1,
            ),
        ],
    )


def test_group_duration_then_speed_factor_then_declared() -> None:
    """train on B: the group's fit; on A: declared speed x factor (the group fit has 1 observation);
    B's factor has too few observations, so `other` keeps its declared 3 h on B."""
    problem = _problem()
    out, use = apply_calibration(problem, _cal(), min_observations=3)
    types = {t.name: t for t in out.gpu_types}
    assert types["A"].speed == pytest.approx(1.0) and types["B"].speed == pytest.approx(1.0)
    train, other, data = out.tasks
    assert train.duration_h == {"B": 7.0}
    assert other.duration_h == {"B": 3.0}
    assert data.duration_h is None  # input_gb: measured durations hold a transfer; speed only
    assert problem.tasks[0].duration_h is None and problem.gpu_types[0].speed == 2.0  # input unchanged
    src = {(v.gpu_type, v.group, v.quantity): v for v in use.values}
    assert src[("A", None, "speed")].source == "calibration"
    assert (
        src[("A", None, "speed")].tasks == 3 and src[("B", None, "speed")].tasks == 2
    )  # train: its fit on B
    assert src[("B", None, "speed")].source == "declared" and "fewer than 3" in src[("B", None, "speed")].note
    assert (
        src[("B", "train", "duration_h")].source == "calibration"
        and src[("B", "train", "duration_h")].tasks == 1
    )
    assert src[("A", "train", "duration_h")].source == "declared"
    assert (use.tasks_calibrated, use.tasks_declared) == (3, 0)


def test_explicit_durations_follow_the_type_factor() -> None:
    """A declared duration_h on a calibrated type is divided by its factor."""
    out, _ = apply_calibration(_problem(), _cal(), min_observations=2)
    assert out.tasks[1].duration_h == {"B": pytest.approx(1.5)}


def test_a_higher_threshold_keeps_everything_declared() -> None:
    """With too little evidence for any value, the problem comes back as it was."""
    problem = _problem()
    out, use = apply_calibration(problem, _cal(), min_observations=50)
    assert out == problem
    assert all(v.source == "declared" for v in use.values) and use.tasks_calibrated == 0
    with pytest.raises(InputError, match="--min-observations"):
        apply_calibration(problem, _cal(), min_observations=0)


def test_solve_with_a_calibration_plans_with_it_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gpuplan solve --calibration`: durations in the plan are the calibrated ones, and the plan's
    calibration field lists the sources; a bad file or threshold exits 2 with one line."""
    (tmp_path / "p.json").write_text(_problem().model_dump_json())
    (tmp_path / "c.json").write_text(_cal().model_dump_json())
    args = ["solve", str(tmp_path / "p.json"), "--solver", "greedy", "--time-limit", "5", "--workers", "1"]
    assert main([*args, "-o", str(tmp_path / "plan.json"), "--calibration", str(tmp_path / "c.json")]) == 0
    plan = gpuplan.Plan.model_validate_json((tmp_path / "plan.json").read_text())
    assert plan.calibration is not None and plan.calibration.file == str(tmp_path / "c.json")
    hours = {a.task: (a.gpu_type, a.duration_h) for a in plan.assignments}
    assert hours["train"] in (("A", pytest.approx(4.0)), ("B", pytest.approx(7.0)))
    assert "calibrated 2 of 4 values from measured runs; tasks: 3 calibrated, 0 declared" in plan.summary()
    assert main([*args, "-o", str(tmp_path / "plain.json")]) == 0
    assert gpuplan.Plan.model_validate_json((tmp_path / "plain.json").read_text()).calibration is None
    capsys.readouterr()

    bad = json.loads(_cal().model_dump_json())
    bad["speeds"][0]["factor"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main([*args, "--calibration", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json.speeds[0].factor" in err[0] and "-1" in err[0]
    assert main([*args, "--calibration", str(tmp_path / "c.json"), "--min-observations", "0"]) == 2
    assert "--min-observations: must be >= 1 (got 0)" in capsys.readouterr().err


def test_calibrate_command_writes_a_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gpuplan calibrate` on a state directory writes a valid calibration; no run there exits 2."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "history"))
    from runs import make_run

    state = make_run(
        tmp_path / "s",
        [
            {"task": "t1", "gpus": ["a0"], "state": "succeeded", "t_running": 0.0, "t_end": 30.0},
            {"task": "t2", "gpus": ["a0"], "state": "succeeded", "t_running": 0.0, "t_end": 30.0},
            {"task": "t1", "gpus": ["a0"], "state": "stopped", "t_running": 0.0, "t_end": 5.0},
        ],
    )
    assert main(["calibrate", str(state), "-o", str(tmp_path / "c.json")]) == 0
    cal = Calibration.model_validate_json((tmp_path / "c.json").read_text())
    assert cal.used == 2 and cal.excluded == {"stopped or moved": 1}
    assert cal.speeds[0].factor == pytest.approx(2.0 / 3.0)  # declared 2 h, ran 3 h
    assert "3 attempts, 2 used (left out: 1 stopped or moved)" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path)]) == 2

"""The HTML report: its sections, escaping and size limits; a real run through history, calibration
and the report; and the page opened in headless Chromium."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

import gpuplan
from gpuplan.calibration import apply_calibration, fit
from gpuplan.cli import main
from gpuplan.history import load_history, read_journal, run_records
from gpuplan.report import MAX_ROWS, render_report

SECTIONS = ("summary", "utilization", "timeline", "left-out")


def _plan(path: Path) -> gpuplan.Plan:
    return gpuplan.Plan.model_validate_json(path.read_text())


def test_plan_alone_has_its_sections_and_no_outside_resource(small_run: tuple[Path, Path]) -> None:
    """Without a run: summary, utilization, timeline, left-out; names escaped; nothing fetched."""
    page = render_report(_plan(small_run[0]))
    for s in SECTIONS:
        assert f'<section id="{s}">' in page
    assert 'id="versus"' not in page and 'id="faults"' not in page
    assert "&lt;odd &amp; id&gt;" in page and "<odd & id>" not in page
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "@import" not in page and "url(" not in page


def test_a_run_adds_planned_against_actual_and_the_fault(small_run: tuple[Path, Path]) -> None:
    """With the run: each task's planned and measured hours, the failed GPU and the moved task."""
    plan_path, state = small_run
    run = read_journal(state)
    page = render_report(_plan(plan_path), run=run, records=run_records(run))
    assert '<section id="versus">' in page and '<section id="faults">' in page
    assert "GPU is lost (simulated)" in page
    assert 'class="actual"' in page and 'class="planned"' in page
    assert "sampled utilization" in page and "<td>f0</td>" in page
    assert "move" in page


def test_history_of_the_run_calibrates_the_slow_type(small_run: tuple[Path, Path]) -> None:
    """The 'fast' type ran at 1.4, not 2.0: the fit, from the whole attempts (the one stopped by the GPU
    failure is left out), finds it clearly slower than declared (below 0.8; at this time compression the
    task program's start-up adds to every measured duration), and the calibrated problem plans with
    it."""
    _, state = small_run
    records = load_history([state])
    assert any(r.state == "stopped" for r in records)
    cal = fit(records)
    assert cal.excluded.get("stopped or moved", 0) >= 1
    fast = cal.speed("fast")
    assert fast is not None and fast.high < 0.8
    problem = gpuplan.Problem.model_validate(read_journal(state).meta["problem"])
    tuned, use = apply_calibration(problem, cal, min_observations=2)
    assert {t.name: t.speed for t in tuned.gpu_types}["fast"] == pytest.approx(2.0 * fast.factor)
    assert use.tasks_calibrated > 0


def test_many_gpus_stay_compact() -> None:
    """Thousands of GPUs: one utilization cell each, at most MAX_ROWS timeline rows, a note on the cut."""
    n = 3000
    plan = gpuplan.Plan(
        status=gpuplan.Status.FEASIBLE,
        solver="greedy",
        solver_requested="auto",
        wall_time_s=1.0,
        assignments=[
            gpuplan.models.Assignment(
                task=f"t{k}", gpus=[f"g{k}"], gpu_type="A", cost=1.0, duration_h=1.0 + k % 7
            )
            for k in range(n)
        ],
        gpus=[
            gpuplan.models.GPUUsage(gpu=f"g{k}", tasks=1, used={}, capacity={}, utilization=(k % 10) / 10)
            for k in range(n)
        ],
        unassigned=[gpuplan.models.Unassigned(task=f"u{k}", reason="no room") for k in range(5000)],
    )
    page = render_report(plan)
    assert page.count('class="planned"') == MAX_ROWS
    assert f"the {MAX_ROWS} busiest of {n:,} GPUs are drawn" in page
    assert page.count("<rect x=") >= n
    assert "4,600 more" in page
    assert len(page) < 3_000_000


def test_report_command(
    small_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gpuplan report PLAN --run STATE -o FILE` writes the page; a missing run exits 2 in one line."""
    plan_path, state = small_run
    out = tmp_path / "r.html"
    assert main(["report", str(plan_path), "--run", str(state), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["report", str(plan_path), "--run", str(tmp_path / "none")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(read_journal(state).meta["problem"]))
    assert main(["report", str(plan_path), "--problem", str(problem), "-o", str(out)]) == 0
    energy = re.search(r"<b class=\"\">([0-9.,]+)</b><span>energy \(planned, kWh\)", out.read_text())
    assert energy is not None and float(energy.group(1)) > 0


def png_distinct_rows(data: bytes) -> int:
    """How many different scanlines a PNG has (filtered bytes; a blank page has one or two)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, bpp = 8, b"", 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, _, depth, color = struct.unpack(">IIBB", body[:10])
            bpp = {2: 3, 6: 4, 0: 1, 4: 2}[color] * depth // 8
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    return len({raw[k : k + stride] for k in range(0, len(raw), stride)})


def _open(chromium: str, page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            *flags,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_page_opens_in_a_headless_browser(
    chromium: str, small_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """Chromium loads the report without a console error, the script marks every section rendered,
    the timeline holds planned and actual bars, and the screenshot is not blank (a blank page is)."""
    plan_path, state = small_run
    page = tmp_path / "report.html"
    assert main(["report", str(plan_path), "--run", str(state), "-o", str(page)]) == 0
    dom = _open(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    ids = re.findall(r'<section id="([a-z-]+)"', dom.stdout)
    assert ids == ["summary", "utilization", "timeline", "versus", "faults", "left-out"]
    assert f'data-rendered="{len(ids)}"' in dom.stdout
    assert 'id="gantt"' in dom.stdout and 'class="actual"' in dom.stdout
    shot = tmp_path / "shot.png"
    _open(chromium, page, f"--screenshot={shot}", "--window-size=1200,1600")
    assert png_distinct_rows(shot.read_bytes()) > 100

    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    _open(chromium, blank, f"--screenshot={tmp_path / 'blank.png'}", "--window-size=1200,1600")
    assert png_distinct_rows((tmp_path / "blank.png").read_bytes()) <= 3

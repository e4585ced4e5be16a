"""`gpuplan capacity`: exit codes, one-line errors naming file, field and value, JSON on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.cli import main

DATA = Path(__file__).resolve().parent.parent / "data" / "capacity"
INVALID = sorted((DATA / "invalid").glob("*.json"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "capacity"

#: fixture -> text the one-line error must contain (the field path and the bad value or rule).
EXPECTED = {
    "workload_deadline_beyond_horizon": "workload: tasks[0].deadline_h: 50 is beyond the horizon 48",
    "workload_duplicate_id": "tasks[1].id: duplicate task id 'a'",
    "workload_negative_work": "workload.tasks[0].work_h",
    "workload_unknown_key": "workload.tasks[0].gpu_mem: unknown key",
    "workload_unknown_type": "workload.tasks[0].allowed_types[0]: unknown GPU type 'V100'",
    "workload_nan": "workload.tasks[0].work_h: invalid number NaN",
    "workload_zero_gang": "workload.tasks[0].gpus",
    "workload_not_object": "workload: expected a JSON object",
    "catalog_max_below_min": "catalog.offers[0]: max_nodes 2 is below min_nodes 3",
    "catalog_duplicate_offer": "offers[1].name: duplicate offer 'x'",
    "catalog_discount_one": "catalog.offers[0].commit_discount",
    "catalog_empty_offers": "catalog.offers",
    "catalog_negative_price": "catalog.offers[0].price_per_node_hour",
    "catalog_malformed_json": "invalid JSON",
}


def test_every_fixture_has_an_expectation():
    """Each invalid fixture is checked (none silently skipped)."""
    assert {p.stem for p in INVALID} == set(EXPECTED)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_input_exit_2_one_line(path, capsys):
    """Invalid input: exit 2 and one stderr line naming the field."""
    args = (
        [str(path), str(DATA / "catalog.json")]
        if path.stem.startswith("workload")
        else [str(DATA / "workload.json"), str(path)]
    )
    code = main(["capacity", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert EXPECTED[path.stem] in err[0]


def test_ok_exit_0_report(capsys):
    """A feasible workload: exit 0, a proven report on stdout, rounds on stderr."""
    code = main(["capacity", str(DATA / "workload.json"), str(DATA / "catalog.json")])
    out, err = capsys.readouterr()
    rep = json.loads(out)
    assert code == 0
    assert rep["status"] == "proven"
    assert {f["offer"] for f in rep["fleet"]} >= {"big"}
    assert rep["price_notice"] == "test prices, not quotes"
    assert "round 1" in err
    assert rep["lp_bound"] <= rep["milp_bound"] <= rep["cost"] + 1e-6


def test_infeasible_memory_exit_3(tmp_path, capsys):
    """A task needing more memory than any offer: exit 3, the report names the task and reason."""
    wl = {"horizon_h": 10, "tasks": [{"id": "huge", "work_h": 1, "gpu_memory_gb": 141}]}
    (tmp_path / "w.json").write_text(json.dumps(wl))
    code = main(["capacity", str(tmp_path / "w.json"), str(DATA / "catalog.json")])
    rep = json.loads(capsys.readouterr().out)
    assert code == 3
    assert rep["status"] == "infeasible"
    assert rep["infeasible"][0]["task"] == "huge"
    assert "141 GB" in rep["infeasible"][0]["reason"] and "80 GB" in rep["infeasible"][0]["reason"]


def test_infeasible_max_nodes_exit_3(tmp_path, capsys):
    """More work than max_nodes can hold: exit 3 with the reason."""
    wl = {"horizon_h": 10, "tasks": [{"id": f"t{i}", "work_h": 10} for i in range(100)]}
    (tmp_path / "w.json").write_text(json.dumps(wl))
    code = main(["capacity", str(tmp_path / "w.json"), str(DATA / "catalog.json")])
    rep = json.loads(capsys.readouterr().out)
    assert code == 3
    assert "max_nodes" in rep["message"]


def test_schema(capsys):
    """--schema prints a JSON Schema whose fields carry descriptions."""
    assert main(["capacity", "--schema", "catalog"]) == 0
    schema = json.loads(capsys.readouterr().out)
    offer = schema["$defs"]["Offer"]["properties"]
    assert all("description" in v for v in offer.values())


def test_missing_arguments_exit_2(capsys):
    """No files and no --schema: exit 2."""
    assert main(["capacity"]) == 2
    assert "WORKLOAD" in capsys.readouterr().err


def test_bad_sweep_values_exit_2(capsys):
    """--sweep-horizon with a non-number: exit 2 naming the flag."""
    code = main(
        ["capacity", str(DATA / "workload.json"), str(DATA / "catalog.json"), "--sweep-horizon", "a,b"]
    )
    assert code == 2
    assert "--sweep-horizon" in capsys.readouterr().err


def test_sweep_csv_and_plot(tmp_path, capsys):
    """Sweeps write one CSV row per point (horizon and price x offer) and a PNG."""
    pytest.importorskip("matplotlib")
    csv_path, png = tmp_path / "s.csv", tmp_path / "s.png"
    code = main(
        [
            "capacity", str(DATA / "workload.json"), str(DATA / "catalog.json"),
            "--sweep-horizon", "48,96", "--sweep-price", "0.5,1.5",
            "--csv", str(csv_path), "--plot", str(png), "--alternatives", "0",
        ]
    )  # fmt: skip
    assert code == 0
    lines = csv_path.read_text().strip().splitlines()
    assert len(lines) == 1 + 2 + 2 * 2
    assert lines[0].startswith("sweep,horizon_h,scenario,factor,status,cost")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a longer horizon never costs less per hour of horizon than... it holds the same work: cost is
    # finite for every point and the 96 h row is proven
    rows = [line.split(",") for line in lines[1:]]
    assert all(r[4] == "proven" for r in rows)


def test_plot_without_matplotlib_exit_2(monkeypatch, capsys):
    """--plot without matplotlib installed: a clear one-line error, exit 2."""
    import builtins

    real = builtins.__import__

    def fake(name, *a, **kw):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    code = main(
        [
            "capacity",
            str(DATA / "workload.json"),
            str(DATA / "catalog.json"),
            "--sweep-horizon",
            "48",
            "--plot",
            "x.png",
        ]
    )
    assert code == 2
    assert "matplotlib" in capsys.readouterr().err


def test_bundled_example_proven(capsys):
    """The bundled example plans and its catalog says its prices are illustrative."""
    code = main(
        ["capacity", str(EXAMPLES / "workload.json"), str(EXAMPLES / "catalog.json"), "--alternatives", "2"]
    )
    rep = json.loads(capsys.readouterr().out)
    assert code == 0
    assert "ILLUSTRATIVE" in rep["price_notice"]
    assert len(json.loads((EXAMPLES / "catalog.json").read_text())["offers"]) == 6
    assert rep["alternatives"] and all(a["cost"] > 0 for a in rep["alternatives"])

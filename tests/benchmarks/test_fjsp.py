"""Flexible job shop benchmark: the reader, the problem it builds, the plain CP-SAT model and the
independent schedule checker. Tests that read ../shared/data skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import fjspdata
from benchmarks.fjsp import check_schedule, solve_plain_cpsat
from benchmarks.fjspdata import FjspInstance, read_fjsp, to_problem


def _has_data() -> bool:
    try:
        fjspdata.fjsp_dir()
    except FileNotFoundError:
        return False
    return True


needs_data = pytest.mark.skipif(not _has_data(), reason="shared fjsp data (../shared/data) not present")

#: Two jobs on two machines: job 0 = (m0:3 | m1:5) then (m1:2); job 1 = (m0:2).
TINY = FjspInstance("tiny", 2, [[[(0, 3), (1, 5)], [(1, 2)]], [[(0, 2)]]])


def test_reader_parses_the_format(tmp_path: Path) -> None:
    """The first line may carry a third number; leftovers are refused."""
    f = tmp_path / "x.txt"
    f.write_text("2 2 1.5\n2 2 0 3 1 5 1 1 2\n1 1 0 2\n")
    assert read_fjsp(f).jobs == TINY.jobs
    f.write_text("1 2\n1 1 0 2 7\n")
    with pytest.raises(ValueError, match="left over"):
        read_fjsp(f)
    f.write_text("1 2\n1 1 5 2\n")
    with pytest.raises(ValueError, match="machine index"):
        read_fjsp(f)


def test_problem_maps_jobs_to_chains_and_machines_to_types() -> None:
    p = to_problem(TINY)
    tasks = {t["id"]: t for t in p["tasks"]}
    assert tasks["j0o0"]["duration_h"] == {"M0": 3.0, "M1": 5.0} and "after" not in tasks["j0o0"]
    assert tasks["j0o1"]["after"] == ["j0o0"] and tasks["j0o1"]["duration_h"] == {"M1": 2.0}
    assert [n["gpus"][0]["type"] for n in p["nodes"]] == ["M0", "M1"]
    assert p["objective"] == {"kind": "makespan"}


def test_checker_rejects_each_broken_rule() -> None:
    good = {"j0o0": [0, 0, 3], "j0o1": [1, 3, 5], "j1o0": [0, 3, 5]}
    assert check_schedule(TINY, good) == ("ok", 5)
    cases = {
        "not scheduled": {k: v for k, v in good.items() if k != "j1o0"},
        "cannot run it": {**good, "j0o1": [0, 5, 7]},
        "its time": {**good, "j0o0": [0, 0, 4], "j0o1": [1, 4, 6], "j1o0": [0, 4, 6]},
        "previous operation": {**good, "j0o1": [1, 2, 4]},
        "overlap": {**good, "j1o0": [0, 2, 4]},
    }
    for why, schedule in cases.items():
        verdict, makespan = check_schedule(TINY, schedule)
        assert verdict.startswith("BAD") and why in verdict and makespan is None


def test_plain_cpsat_solves_the_tiny_shop() -> None:
    res = solve_plain_cpsat(TINY, 5.0, 1, 0)
    assert res["status"] == "optimal" and res["objective"] == 5
    assert check_schedule(TINY, res["schedule"]) == ("ok", 5)


@needs_data
def test_instances_load_with_their_bounds() -> None:
    insts = {i.name: i for i in fjspdata.load_instances()}
    assert len(insts) == 19
    assert insts["mk01"].optimum == 40 and insts["mk01"].operations == 55
    assert (insts["mk10"].lower, insts["mk10"].upper) == (175, 197)


def test_scaled_copies_are_disjoint_and_keep_the_bounds() -> None:
    from benchmarks.fjspdata import scaled

    two = scaled(TINY, 2)
    assert two.name == "tinyx2" and two.machines == 4 and len(two.jobs) == 4
    assert two.jobs[2] == [[(2, 3), (3, 5)], [(3, 2)]]  # copy 1 on machines 2 and 3
    res = solve_plain_cpsat(two, 5.0, 1, 0)
    assert res["objective"] == 5 and check_schedule(two, res["schedule"])[0] == "ok"
    with pytest.raises(ValueError, match="scale must be >= 1"):
        scaled(TINY, 0)


def _results(path: Path, seed: int, rows: dict[str, tuple[tuple[int, str], tuple[int, str]]]) -> Path:
    """A results file: per instance, (makespan, status) of gpuplan and of plain CP-SAT."""
    import json

    head = {"seed": seed, "command": f"fjsp --seed {seed}", "commit": "c"}
    out = [head]
    for name, (g, c) in rows.items():
        res = {
            m: {
                "makespan": v,
                "status": st,
                "bound": 1,
                "check": "ok",
                "gap_pct": 0.0,
                "new_best": False,
                "wall_s": 1.0,
            }
            for m, (v, st) in (("gpuplan", g), ("cpsat", c))
        }
        out.append({"instance": name, **res})
    path.write_text("\n".join(json.dumps(x) for x in out) + "\n", encoding="utf-8")
    return path


def test_across_seeds_names_each_seed_where_gpuplan_loses_or_misses_a_proof(tmp_path: Path) -> None:
    from benchmarks.fjsp import across

    a = _results(
        tmp_path / "s0.jsonl",
        0,
        {
            "a": ((60, "feasible"), (59, "feasible")),
            "b": ((11, "optimal"), (11, "optimal")),
            "c": ((62, "feasible"), (60, "feasible")),
        },
    )
    b = _results(
        tmp_path / "s1.jsonl",
        1,
        {
            "a": ((58, "feasible"), (61, "feasible")),
            "b": ((11, "feasible"), (11, "optimal")),
            "c": ((60, "feasible"), (60, "feasible")),
        },
    )
    text = across([a, b])
    assert "| a | 60 / 58 | 59 / 61 | 59 vs 60 | 0 | — |" in text
    assert "| b | 11* / 11 | 11* / 11* | 11 vs 11 | — | 1 |" in text
    assert "| c | 62 / 60 | 60 / 60 | 61 vs 60 | 0 | — |" in text
    assert "- by the median over the seeds, gpuplan worse than plain CP-SAT on 1: c (61 vs 60)" in text
    assert (
        "- seed 0: gpuplan worse than plain CP-SAT on 2: a (60 vs 59), c (62 vs 60); "
        "proven optimal by plain CP-SAT but not by gpuplan: none" in text
    )
    assert (
        "- seed 1: gpuplan worse than plain CP-SAT on 0: none; "
        "proven optimal by plain CP-SAT but not by gpuplan: b" in text
    )

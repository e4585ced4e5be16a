"""A short, derandomized fuzz round over every input the command line reads (tests/fuzzing.py), and
the replay of every case a fuzz run ever failed on (tests/data/fuzz/, one file per case)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import CASES, TARGETS, Case, Outcome, check, run_case

#: Examples per target in `make test` (the long campaign: python -m tests.fuzzing).
EXAMPLES = {"solve": 25, "matrix": 20, "validate": 20, "show": 20, "inventory": 15, "capacity": 10, "run": 4}


def _short(strategy: st.SearchStrategy[Case], examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case: Case) -> None:
        assert check(case, run_case(case)) == ""

    return run


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_round(target: str) -> None:
    """Valid and mutated documents: exit 0, 2, 3 or 4 within the limit, one error line, no traceback."""
    _short(TARGETS[target][0](), EXAMPLES[target])()


FIXTURES = sorted(CASES.glob("*.json"))
#: Cases that still fail, and where: strict, so a fix shows up as an unexpected pass.
OPEN: dict[str, str] = {}
_PARAMS = [
    pytest.param(
        p, id=p.stem, marks=[pytest.mark.xfail(strict=True, reason=OPEN[p.stem])] if p.stem in OPEN else []
    )
    for p in FIXTURES
]


@pytest.mark.parametrize("path", _PARAMS)
def test_case_that_once_failed(path: Path) -> None:
    """A case a fuzz run failed on (`found` says how) now passes the same check."""
    case = Case.load(path)
    assert check(case, run_case(case)) == "", case.found


def test_check_catches_what_it_must() -> None:
    """An internal error, a traceback, two error lines and a slow run are each reported."""
    case = Case("solve", [], {}, limit_s=1.0)
    assert check(case, Outcome(1, "", "gpuplan: internal error: boom", 0.1)).startswith("exit 1")
    crash = 'Traceback\n  File "/a/b.py", line 3, in f\n    x[1]\nKeyError: 1'
    assert check(case, Outcome(None, "", "", 0.1, crash=crash)) == 'crash: KeyError: 1 (b.py", line 3, in f)'
    assert "one error line" in check(case, Outcome(2, "", "gpuplan: error: a\ngpuplan: error: b\n", 0.1))
    assert "over its limit" in check(case, Outcome(0, "{}", "", 2.5))
    assert check(case, Outcome(2, "", "gpuplan: error: tasks[0].gpus: bad\n", 0.1)) == ""


def test_fixtures_are_there() -> None:
    """The replayed cases are found (a moved directory would silently test nothing)."""
    assert len(FIXTURES) >= 2

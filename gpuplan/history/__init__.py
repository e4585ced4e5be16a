"""What ran: one record per attempt, read from a run's state directory without writing to it.

`load_history` joins the journal (tasks, attempts, the run's problem, plan and settings) with the GPU
samples of `metrics.jsonl` integrated over each attempt (energy, utilization, peaks); `to_csv` and
`to_json` export it. Calibration and the report read runs through this package only.
"""

from __future__ import annotations

from gpuplan.history.journal import RunJournal, read_journal
from gpuplan.history.metrics import Readings, attempt_readings, load_metrics
from gpuplan.history.records import COLUMNS, AttemptRecord, load_history, run_records, to_csv, to_json

__all__ = [
    "COLUMNS",
    "AttemptRecord",
    "Readings",
    "RunJournal",
    "attempt_readings",
    "load_history",
    "load_metrics",
    "read_journal",
    "run_records",
    "to_csv",
    "to_json",
]

"""JSON in and out for the subcommands: read a file or stdin, validate it, write the result.

Every mistake in the input becomes one `InputError` naming the file or field and the value.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from gpuplan.errors import InputError


def _first_non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """Path and value of the first NaN or infinity in a parsed JSON document."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub_path, sub in items:
        found = _first_non_finite(sub, sub_path)
        if found:
            return found
    return None


def load_json(source: str) -> Any:
    """Read JSON from a path or '-' (stdin); NaN and Infinity are refused."""
    if source == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        p = Path(source)
        if not p.is_file():
            raise InputError(source, "no such file")
        text = p.read_text(encoding="utf-8", errors="replace")
        name = source
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    bad = _first_non_finite(data)
    if bad:
        spelled = "NaN" if math.isnan(bad[1]) else ("Infinity" if bad[1] > 0 else "-Infinity")
        raise InputError(bad[0], f"invalid number {spelled}: numbers must be finite")
    return data


def validated(model: Any, data: Any, name: str) -> Any:
    """`model.model_validate(data)`; bad input becomes one InputError with `name` before the field path
    (so a run with several input files says which one is wrong)."""
    from pydantic import ValidationError

    from gpuplan.models.validation import format_validation_error

    if not isinstance(data, dict):
        raise InputError(name, f"expected a JSON object at the top level (got {type(data).__name__})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = format_validation_error(exc)
        raise InputError(f"{name}.{err.path}" if err.path else name, err.message) from None


def load_problem(source: str) -> Any:
    """Path or '-' -> Problem or MatrixProblem; bad input raises InputError."""
    from pydantic import ValidationError

    from gpuplan.api import parse_problem
    from gpuplan.models.validation import format_validation_error

    data = load_json(source)
    if not isinstance(data, dict):
        raise InputError("", f"expected a JSON object at the top level (got {type(data).__name__})")
    try:
        return parse_problem(data)
    except ValidationError as exc:
        raise format_validation_error(exc) from None


def _write(text: str, out: str | None) -> None:
    """Write `text` and a newline to the file `out` (parents created), or to stdout."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")


__all__ = ["_write", "load_json", "load_problem", "validated"]

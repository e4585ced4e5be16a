"""JSON in and out for the subcommands: read a file or stdin, validate it, write the result.

Every mistake in the input becomes one `InputError` naming the file or field and the value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gpuplan.errors import InputError


def load_json(source: str) -> Any:
    """Read JSON from a path or '-' (stdin) within the input limits (`gpuplan.models.json_input`):
    not UTF-8, too large, too deep, NaN and Infinity, oversized integers and strings are refused."""
    from gpuplan.models.json_input import MAX_INPUT_BYTES, parse_json

    if source == "-":
        stream = getattr(sys.stdin, "buffer", None)  # a text stream without bytes (tests): its text
        raw = stream.read(MAX_INPUT_BYTES + 1) if stream else sys.stdin.read(MAX_INPUT_BYTES + 1).encode()
        name = "<stdin>"
    else:
        p = Path(source)
        if not p.is_file():
            raise InputError(source, "no such file")
        if p.stat().st_size > MAX_INPUT_BYTES:
            raise InputError(
                source, f"{p.stat().st_size:,} bytes is over the input limit of {MAX_INPUT_BYTES:,}"
            )
        raw = p.read_bytes()
        name = source
    return parse_json(raw, name)


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

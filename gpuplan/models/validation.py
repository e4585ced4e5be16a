"""Pydantic validation errors as gpuplan's `InputError`: one line naming the field path and the value.

Shared by the command line and the library's own file readers (e.g. the executor's sim fleet), so a
bad field reads the same wherever it is found.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from gpuplan.errors import InputError

#: A message that starts by naming a field of the model that raised it: `deadline_h: ...`.
_FIELD = re.compile(r"([A-Za-z_]\w*(?:\[\d+\])*): ")


def _loc(loc: tuple[Any, ...]) -> str:
    """Pydantic's location tuple as a field path: `tasks[3].gpus`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(value: Any) -> str:
    """A value as at most 60 characters of JSON (strings quoted)."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(exc: ValidationError) -> InputError:
    """First pydantic error as one line: field path, message, bad value (+ how many more)."""
    errors = exc.errors(include_url=False)
    e = errors[0]
    path = _loc(tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or "-" in p))))
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = f"unknown key (value {_short(e.get('input'))})"
    elif e["type"] not in ("value_error", "assertion_error", "missing"):
        msg = f"{msg} (got {_short(e.get('input'))})"
    more = f" (+{len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if path and msg.startswith((path + ".", path + "[")):
        path = ""  # the message already names the full path
    elif path and (field := _FIELD.match(msg)):
        path, msg = f"{path}.{field.group(1)}", msg[field.end() :]  # a model's check names its field
    return InputError(path, msg + more)


__all__ = ["format_validation_error"]

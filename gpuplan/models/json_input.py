"""Reading JSON that nobody checked: size limits, strict UTF-8, and one `InputError` for every flaw.

Every JSON file gpuplan reads (problem, matrix form, plan, commands, simulated fleet, capacity
workload and catalog) comes through `parse_json`, so that hostile input (a document nested a
hundred thousand levels deep, numbers with thousands of digits, bytes that are not UTF-8, gigantic
strings, NaN) is refused with one line naming the place, never a crash. The limits
(docs/limits.md) are far above any real plan's needs.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gpuplan.errors import InputError

#: Largest JSON document read, in bytes.
MAX_INPUT_BYTES = 512 * 1024 * 1024
#: Deepest nesting of arrays and objects (a problem needs about 6).
MAX_DEPTH = 64
#: Longest string (ids, names, labels, command arguments), in characters.
MAX_STRING_CHARS = 65_536
#: Largest integer magnitude: 2^53, the integers a JSON number holds exactly everywhere.
MAX_INT = 2**53


def _at(path: str) -> str:
    return path or "(top level)"


def _check(data: Any) -> None:
    """Depth, finite numbers, integer sizes and strings of a parsed document, walked without
    recursion (the first flaw raises)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InputError(_at(path), f"nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            children = []
            for key, sub in items:
                if isinstance(key, str):
                    _check_string(key, f"{path}.{key[:40]}" if path else key[:40], is_key=True)
                    sub_path = f"{path}.{key}" if path else key
                else:
                    sub_path = f"{path}[{key}]"
                children.append((sub, sub_path, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(value, float) and not math.isfinite(value):
            spelled = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            also = "" if math.isnan(value) else " (or a number too large for a float, such as 1e400)"
            raise InputError(_at(path), f"invalid number {spelled}{also}: numbers must be finite")
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise InputError(_at(path), f"integer {_digits(value)} too large (limit 2^53 = {MAX_INT})")
        elif isinstance(value, str):
            _check_string(value, path)


def _digits(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def _check_string(value: str, path: str, is_key: bool = False) -> None:
    what = "key" if is_key else "string"
    if len(value) > MAX_STRING_CHARS:
        raise InputError(_at(path), f"{what} of {len(value):,} characters (limit {MAX_STRING_CHARS:,})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(_at(path), f"{what} holds an unpaired surrogate (\\ud800-\\udfff)") from None


def parse_json(raw: bytes, name: str) -> Any:
    """Bytes of a JSON document -> Python values, within the limits above; `name` (the file, or
    <stdin>) starts the message of a document that is not JSON at all."""
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(name, f"{len(raw):,} bytes is over the input limit of {MAX_INPUT_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            name, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InputError(name, f"invalid JSON: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # an integer of more digits than Python converts (int_max_str_digits)
        raise InputError(name, f"invalid JSON: {str(exc).split(';')[0]}") from None
    _check(data)
    return data


__all__ = ["MAX_DEPTH", "MAX_INPUT_BYTES", "MAX_INT", "MAX_STRING_CHARS", "parse_json"]

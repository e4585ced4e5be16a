"""Shared pydantic configuration: frozen, no unknown keys, no NaN or infinity, no absurd magnitudes."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

#: Largest magnitude of a number in any input model (hours, prices, sizes, costs): far beyond any
#: real fleet, and small enough that products of a few of them stay finite in float64.
MAX_NUMBER = 1e15


def _first_too_large(value: Any, path: str) -> tuple[str, float] | None:
    """Path and value of the first number in `value` (numbers, lists and dicts of them; models are
    checked by their own validator) whose magnitude passes MAX_NUMBER."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (path, value) if abs(value) > MAX_NUMBER else None
    if isinstance(value, list | tuple):
        for k, sub in enumerate(value):
            found = _first_too_large(sub, f"{path}[{k}]")
            if found:
                return found
    elif isinstance(value, dict):
        for key, sub in value.items():
            found = _first_too_large(sub, f"{path}[{key!r}]")
            if found:
                return found
    return None


def _holds_numbers(annotation: Any) -> bool:
    """Whether a field of this type may hold a number outside a nested model (conservative: True for
    any type it does not know)."""
    if annotation in (str, bool, type(None)):
        return False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False  # checked by its own validator
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is not None:
        return any(_holds_numbers(arg) for arg in get_args(annotation))
    return True


@cache
def _numeric_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of a model class that may hold numbers (a GPU has one: its temperature)."""
    return tuple(name for name, f in cls.model_fields.items() if _holds_numbers(f.annotation))


def check_magnitudes(model: BaseModel) -> None:
    """Raise ValueError naming the first field (and index) whose number passes MAX_NUMBER."""
    for name in _numeric_fields(type(model)):
        found = _first_too_large(getattr(model, name), name)
        if found:
            raise ValueError(f"{found[0]}: {found[1]:g} is beyond the limit of {MAX_NUMBER:g} in magnitude")


class Spec(BaseModel):
    """Base of every input model: immutable, strict about unknown keys, non-finite numbers and
    magnitudes beyond MAX_NUMBER."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _magnitudes(self) -> Spec:
        check_magnitudes(self)
        return self

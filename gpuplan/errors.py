"""gpuplan's errors: one root, and one subclass for every mistake in the user's input.

`InputError` carries the field path (``tasks[3].gpus``, ``--time-limit``, ``solver``) and a message
that names the bad value; the command line maps it to exit code 2. Any other exception is a bug in
gpuplan (exit 1): a plan that fails the verifier raises `VerificationError`.
"""

from __future__ import annotations


class GpuplanError(Exception):
    """Root of the errors gpuplan raises on purpose."""


class InputError(GpuplanError, ValueError):
    """A mistake in the user's input: `path` names the field, `message` the problem and the value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class VerificationError(GpuplanError, AssertionError):
    """The engine produced a plan that breaks the problem's rules: an internal bug, never the user's."""


__all__ = ["GpuplanError", "InputError", "VerificationError"]

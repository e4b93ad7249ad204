"""The OculaError tree.

Every error says what was expected, what came in, and how to fix it. The CLI prints
``str(error)`` as one line and exits with ``error.exit_code``; nothing here imports ocula.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OculaError(Exception):
    """Base of every error ocula raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(OculaError):
    """The user asked for something that cannot be done as asked (exit code 2)."""

    exit_code = 2


class DataError(UsageError):
    """The data path, layout or labels are unusable."""


class ConfigError(UsageError):
    """A configuration value or key is invalid."""


class ModelError(UsageError):
    """A model name, checkpoint or transfer mode is invalid."""


class ImageError(OculaError):
    """One image file cannot be used; ``reason`` is a short code such as ``truncated``."""

    def __init__(self, path: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.path = path
        self.reason = reason
        self.detail = detail


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message, or its type's name when the message is
    empty (``EOFError()`` from a zero-byte file): for one-line errors about foreign failures."""
    line = next((part.strip() for part in str(error).splitlines() if part.strip()), "")
    return line[:limit] if line else type(error).__name__


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A hint naming the closest choices, for 'unknown name' errors."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(sorted(choices)[:12])
    more = ", ..." if len(choices) > 12 else ""
    return f"choose one of: {shown}{more}"


def unknown(kind: str, name: str, choices: Iterable[str], error: type[UsageError] = UsageError) -> UsageError:
    """Build the standard 'unknown X' error with close-match suggestions."""
    return error(f"unknown {kind} {name!r}", hint=suggest(name, choices))


class Interrupted(OculaError):
    """The user stopped a job (Ctrl-C); what was done is saved (exit code 130, as shells expect)."""

    exit_code = 130

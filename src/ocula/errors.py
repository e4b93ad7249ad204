"""The OculaError tree.

Every error says what was expected, what came in, and how to fix it. The CLI prints
``str(error)`` as one line and exits with ``error.exit_code``; nothing here imports ocula.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit


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


# Query parameters that carry secrets in SQLAlchemy, libpq, fsspec and cloud URLs.
_SECRET = re.compile(r"pass|pwd|secret|token|key|credential|signature|auth", re.IGNORECASE)


def mask_url(url: str) -> str:
    """A storage URL as messages may show it: no password in its user-info or its query.

    ``postgresql://u:pw@db/x?password=pw&sslmode=require`` -> ``postgresql://u:***@db/x?password=***&sslmode=require``."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://***"  # unparseable: show nothing after the scheme
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{userinfo}@{host}"
    query = urlencode([(k, "***" if _SECRET.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if parts.query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


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

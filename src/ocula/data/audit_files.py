"""The per-file half of the audit: read, hash, decode, measure, fingerprint.

Results depend only on a file's bytes (never on its path or on audit thresholds), so they
can be cached by content hash: a second audit of the same photos only reads and hashes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ocula.data.imageio import decode_full, read_bytes
from ocula.data.phash import phash
from ocula.errors import ImageError

# JPEGs are decoded at 1/2..1/8 scale but no smaller than this per side; plenty for a
# 32x32 pHash, and the full stream is still read so truncation is caught.
_DRAFT_SIZE = (64, 64)
# Bump when the per-file result would change for the same bytes (new notes, new hash).
RESULT_VERSION = 1


@dataclass
class FileResult:
    """What one pass over one file learned."""

    path: str
    sha1: str | None = None
    reason: str | None = None  # an ImageError reason code; None when the file decoded
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0
    phash: int | None = None


def inspect_file(path: str, known: dict[str, FileResult] | None = None) -> FileResult:
    """Read, hash and decode ``path``; never raises for a bad file.

    ``known`` maps sha1 -> an earlier result for the same bytes, which skips decoding.
    """
    try:
        data = read_bytes(path)
    except ImageError as error:
        return FileResult(path, reason=error.reason, detail=error.detail)
    sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    cached = known.get(sha1) if known else None
    if cached is not None:
        return FileResult(path, sha1, cached.reason, cached.detail, list(cached.notes), cached.width, cached.height, cached.phash)
    try:
        decoded = decode_full(data, path, draft=_DRAFT_SIZE)
    except ImageError as error:
        return FileResult(path, sha1, error.reason, error.detail)
    width, height = decoded.size
    return FileResult(path, sha1, None, "", decoded.notes, width, height, phash(decoded.image))


class ResultStore:
    """Per-file results keyed by content hash, in one small SQLite file.

    Read entirely into memory up front (a few dozen bytes per image) so worker threads can
    look results up without touching SQLite; new results are written in one transaction
    from the calling thread at the end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, FileResult]:
        if not self.path.exists():
            return {}
        try:
            with sqlite3.connect(self.path) as db:
                rows = db.execute(
                    "SELECT sha1, reason, detail, notes, width, height, phash FROM files WHERE version = ?",
                    (RESULT_VERSION,),
                ).fetchall()
        except sqlite3.Error:
            return {}  # a damaged cache only costs time; the audit recomputes
        return {
            sha1: FileResult("", sha1, reason, detail, json.loads(notes), width, height, _from_signed(hash_))
            for sha1, reason, detail, notes, width, height, hash_ in rows
        }

    def save(self, results: Iterable[FileResult]) -> None:
        # Read failures have no sha1, and their cause (a missing file) may be fixed.
        rows = [
            (r.sha1, RESULT_VERSION, r.reason, r.detail, json.dumps(r.notes), r.width, r.height, _to_signed(r.phash))
            for r in results
            if r.sha1 is not None
        ]
        if not rows:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path) as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS files (sha1 TEXT PRIMARY KEY, version INTEGER, reason TEXT, "
                    "detail TEXT, notes TEXT, width INTEGER, height INTEGER, phash INTEGER)"
                )
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except (sqlite3.Error, OSError):
            pass  # a read-only or full cache disk must not fail the audit


def _to_signed(value: int | None) -> int | None:
    # SQLite integers are signed 64-bit; a pHash uses all 64 bits.
    return None if value is None else value - (1 << 64) if value >= 1 << 63 else value


def _from_signed(value: int | None) -> int | None:
    return None if value is None else value + (1 << 64) if value < 0 else value

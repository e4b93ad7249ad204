"""The run directory: one self-describing folder per training run (DESIGN.md, 'Artifacts')."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ocula.errors import UsageError


def new_run_id() -> str:
    """Sortable by time, unique without coordination: 20261122-031500-3f9a."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    _atomic_write(Path(path), json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> None:
    _atomic_write(Path(path), yaml.safe_dump(data, sort_keys=False))


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RunDir:
    """Paths of a run's artifacts; creating the object touches nothing on disk."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def weights(self) -> Path:
        return self.model_dir / "weights.pt"

    @property
    def card(self) -> Path:
        return self.model_dir / "card.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def audit(self) -> Path:
        return self.path / "data_audit.json"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def log(self) -> Path:
        return self.path / "log.txt"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def is_tabular(self) -> bool:
        """True for an ``ocula automl`` run (its card says so); an image loader judges any other card."""
        try:
            return read_json(self.card).get("type") == "tabular"
        except (ValueError, OSError, AttributeError):
            return False

    def create(self) -> RunDir:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        return self

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, need: tuple[str, ...] = ("config",)) -> RunDir:
        """An existing run; a missing folder or artifact is a one-line UsageError."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise UsageError(f"run directory {str(path)!r} does not exist", hint="see `ocula runs list`")
        for name in need:
            if not getattr(run, name).exists():
                raise UsageError(
                    f"{str(path)!r} is not a complete ocula run: {getattr(run, name).name} is missing",
                    hint="pass a folder written by `ocula train`",
                )
        return run

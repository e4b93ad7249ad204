"""A table in, its problem out: CSV or Parquet read with one-line errors, the target checked,
the problem type inferred with its evidence, and the metrics (Autopilot's names and defaults)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocula.errors import ConfigError, DataError, first_line, unknown

KINDS = ("binary", "multiclass", "regression")
# metric -> (problem kinds it applies to, greater is better)
METRICS: dict[str, tuple[tuple[str, ...], bool]] = {
    "accuracy": (("binary", "multiclass"), True),
    "balanced_accuracy": (("binary", "multiclass"), True),
    "f1": (("binary", "multiclass"), True),
    "auc": (("binary", "multiclass"), True),
    "log_loss": (("binary", "multiclass"), False),
    "rmse": (("regression",), False),
    "mae": (("regression",), False),
    "r2": (("regression",), True),
}
DEFAULT_METRIC = {"binary": "f1", "multiclass": "accuracy", "regression": "rmse"}  # Autopilot's (MSE ~ RMSE)
MAX_CLASSES_AS_INTEGERS = 20  # an integer target with at most this many values is taken as classes
MIN_ROWS = 20


def read_table(path: str | Path) -> Any:
    """The table at ``path`` (.csv, .tsv, .txt or .parquet) as a DataFrame; DataError otherwise."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DataError(f"{str(path)!r} does not exist", hint="pass a CSV or Parquet file")
    if p.is_dir():
        raise DataError(f"{str(path)!r} is a folder", hint="pass a CSV or Parquet file")
    if p.stat().st_size == 0:
        raise DataError(f"{p} is empty", hint="the file has no header and no rows")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        else:
            head = p.open("rb").read(65536)
            if b"\x00" in head:
                raise DataError(f"{p} is not a table: it holds binary data", hint="pass a CSV or Parquet file")
            sep = separator(head.decode("utf-8", errors="replace"))
            frame = pd.read_csv(p, sep=sep, skipinitialspace=True)
            frame.attrs["separator"] = sep  # for the run's candidate.py, which reads the file the same way
    except DataError:
        raise
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as error:
        raise DataError(f"{p} is not a readable table: {first_line(error, 160)}") from None
    if frame.shape[1] < 2:
        raise DataError(f"{p} is not a table of features and a target: it has {frame.shape[1]} column",
                        hint="a header row and comma-separated columns, one of them the target")
    if len(frame) == 0:
        raise DataError(f"{p} has a header but no rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def separator(text: str) -> str:
    try:
        return csv.Sniffer().sniff("\n".join(text.splitlines()[:20]), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


@dataclass(frozen=True)
class Problem:
    """What is predicted: ``kind``, the class ``labels`` (index = encoded value; for binary the
    minority class is 1, the positive class of F1) and why the kind was chosen."""

    target: str
    kind: str
    metric: str
    evidence: str
    labels: list[Any] = field(default_factory=list)

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.metric][1]

    def encode(self, values: Any) -> np.ndarray:
        if self.kind == "regression":
            return np.asarray(values, dtype=float)
        index = {str(label): i for i, label in enumerate(self.labels)}
        return np.array([index[str(v)] for v in values], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "metric": self.metric, "evidence": self.evidence,
                "labels": self.labels, "greater_is_better": self.greater_is_better}


def infer_problem(frame: Any, target: str, *, kind: str | None = None, metric: str | None = None) -> Problem:
    """The problem for ``target`` in ``frame`` (rows with a missing target are not counted)."""
    if target not in frame.columns:
        raise unknown("target column", target, [str(c) for c in frame.columns], DataError)
    y = frame[target].dropna()
    if len(y) == 0:
        raise DataError(f"target {target!r} has no values")
    distinct = y.nunique()
    if distinct < 2:
        raise DataError(f"target {target!r} has a single value ({y.iloc[0]}): there is nothing to predict")
    numeric = y.dtype.kind in "iuf" and y.dtype != bool
    integral = numeric and bool(np.all(np.mod(y.to_numpy(dtype=float), 1) == 0))
    if kind is not None:
        if kind not in KINDS:
            raise unknown("problem type", kind, KINDS, ConfigError)
        if kind == "regression" and not numeric:
            raise ConfigError(f"target {target!r} is not numeric, so it cannot be a regression target")
        if kind == "binary" and distinct != 2:
            raise ConfigError(f"target {target!r} has {distinct} values, not 2: it is not a binary problem")
        evidence = f"set by --problem-type ({distinct} distinct values)"
    elif distinct == 2:
        kind, evidence = "binary", f"2 distinct values: {', '.join(map(str, sorted(y.unique(), key=str)))}"
    elif not numeric:
        kind, evidence = "multiclass", f"{distinct} distinct non-numeric values"
    elif integral and distinct <= MAX_CLASSES_AS_INTEGERS:
        kind, evidence = "multiclass", (f"integers with {distinct} distinct values (at most "
                                        f"{MAX_CLASSES_AS_INTEGERS}); pass --problem-type regression if they are amounts")
    else:
        kind, evidence = "regression", (f"numbers with {distinct} distinct values"
                                        + ("" if integral else ", not all integers"))
    metric = metric or DEFAULT_METRIC[kind]
    if metric not in METRICS:
        raise unknown("metric", metric, METRICS, ConfigError)
    if kind not in METRICS[metric][0]:
        raise ConfigError(f"--metric {metric} does not apply to a {kind} problem",
                          hint="choose one of: " + ", ".join(m for m, (kinds, _) in METRICS.items() if kind in kinds))
    labels: list[Any] = []
    if kind != "regression":
        counts = y.astype(str).value_counts()
        order = sorted(counts.index, key=lambda v: (-counts[v], v))  # binary: the majority first
        natives = {str(v): v.item() if hasattr(v, "item") else v for v in y.unique()}
        labels = [natives[v] for v in order]
        if kind != "binary":
            labels = sorted(labels, key=str)
    return Problem(target=target, kind=kind, metric=metric, evidence=evidence, labels=labels)

"""The data report (Autopilot's data exploration): what each column is, what is wrong with the
table, and which columns are left out of the features, each with its reason.

``profile(frame, problem)`` returns a JSON-ready dict; ``features`` in it maps every kept column
to its kind (numeric, categorical, datetime, text), ``excluded`` every other column to why.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from ocula.tabular.table import Problem

ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key|index)$|^id[_\s-]|^(row|record)s?$", re.IGNORECASE)
DATE_LIKE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?)?|^\d{1,2}/\d{1,2}/\d{2,4}")
LEAK_SCORE = 0.97  # a single column predicting the target this well (balanced accuracy or R2) leaks it
HIGH_MISSING = 0.30
SAMPLE = 20_000  # rows used for the leakage check


def column_kind(values: Any, name: str) -> tuple[str, str]:
    """(kind, evidence) of one column: numeric, categorical, datetime, text, id, constant."""
    import pandas as pd

    present = values.dropna()
    rows = len(present)
    distinct = present.nunique()
    if distinct <= 1:
        return "constant", "one value" if distinct else "no values"
    unique_share = distinct / max(rows, 1)
    if pd.api.types.is_bool_dtype(values):
        return "categorical", "true/false"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", "dates"
    if pd.api.types.is_numeric_dtype(values):
        integral = bool(np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))
        if integral and unique_share == 1.0 and rows >= 20 and (ID_NAME.search(name) or _sequential(present)):
            return "id", "a distinct integer on every row" + (" and an id-like name" if ID_NAME.search(name) else
                                                              ", in sequence")
        return "numeric", f"numbers, {distinct} distinct"
    text = present.astype(str)
    sample = text.sample(min(len(text), 500), random_state=0)
    if sample.map(lambda v: bool(DATE_LIKE.match(v))).mean() >= 0.9:
        return "datetime", "dates as text"
    words = sample.str.split().str.len().mean()
    if words >= 3 and unique_share > 0.3:
        return "text", f"free text, {words:.1f} words per value on average"
    if unique_share >= 0.95 and rows >= 20:
        return "id", f"a distinct value on {unique_share:.0%} of rows"
    return "categorical", f"{distinct} levels"


def _sequential(values: Any) -> bool:
    diffs = np.diff(np.sort(values.to_numpy(dtype=float)))
    return bool(len(diffs) and np.all(diffs == diffs[0]))


def profile(frame: Any, problem: Problem, *, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Columns, warnings by severity, target analysis, duplicates, correlations, leakage suspects.
    Columns in ``keep`` stay features even when flagged (the flag stays in the report)."""
    target = problem.target
    columns: dict[str, dict[str, Any]] = {}
    features: dict[str, str] = {}
    excluded: dict[str, str] = {}
    warnings: list[dict[str, str]] = []
    seen: dict[int, str] = {}

    def warn(severity: str, column: str | None, message: str) -> None:
        warnings.append({"severity": severity, "column": column or "", "message": message})

    for name in frame.columns:
        if name == target:
            continue
        values = frame[name]
        kind, evidence = column_kind(values, name)
        missing = float(values.isna().mean())
        columns[name] = {"kind": kind, "evidence": evidence, "dtype": str(values.dtype), "missing": round(missing, 4),
                         "distinct": int(values.nunique())}
        digest = int(hash_column(values))
        if missing >= HIGH_MISSING:
            warn("medium", name, f"{missing:.0%} of values are missing (imputed, with a missing-value indicator)")
        reason = None
        if kind == "constant":
            reason = f"constant column ({evidence})"
            warn("low", name, reason)
        elif kind == "id":
            reason = f"id-like column ({evidence}): it identifies rows and carries no pattern to learn"
            warn("medium", name, reason)
        elif digest in seen:
            reason = f"duplicate of column {seen[digest]!r}"
            warn("low", name, reason)
        seen.setdefault(digest, name)
        if reason and name not in keep:
            excluded[name] = reason
        else:
            features[name] = "categorical" if kind in ("id", "constant") else kind

    leaks = leakage(frame, problem, features)
    for name, value in leaks.items():
        message = (f"target leakage suspected: this column alone predicts {target!r} with "
                   f"{'R2' if problem.kind == 'regression' else 'balanced accuracy'} {value:.3f}")
        warn("high", name, message + ("" if name in keep else "; left out (pass --keep to use it)"))
        columns[name]["leakage_score"] = round(value, 4)
        if name not in keep:
            excluded[name] = message
            features.pop(name, None)

    duplicates = int(frame.duplicated().sum())
    if duplicates:
        warn("medium", None, f"{duplicates} duplicate rows ({duplicates / len(frame):.1%}): "
                             "they can land in both a training and a validation fold")
    y = frame[target]
    missing_target = int(y.isna().sum())
    if missing_target:
        warn("high", target, f"{missing_target} rows have no target value and are left out")
    report = {
        "rows": int(len(frame)), "columns": int(frame.shape[1]), "problem": problem.to_dict(),
        "target": _target_summary(y.dropna(), problem), "missing_target_rows": missing_target,
        "duplicate_rows": duplicates, "column_report": columns, "features": features, "excluded": excluded,
        "correlations": correlations(frame, features, problem),
        "warnings": sorted(warnings, key=lambda w: ("high", "medium", "low").index(w["severity"])),
    }
    imbalance = report["target"].get("imbalance")
    if imbalance and imbalance > 10:
        warn("medium", target, f"classes are imbalanced: the largest is {imbalance:.0f}x the smallest "
                               "(consider --metric balanced_accuracy or f1)")
        report["warnings"] = sorted(warnings, key=lambda w: ("high", "medium", "low").index(w["severity"]))
    return report


def hash_column(values: Any) -> int:
    import pandas as pd

    return int(pd.util.hash_pandas_object(values, index=False).sum() % (1 << 61))


def _target_summary(y: Any, problem: Problem) -> dict[str, Any]:
    if problem.kind == "regression":
        v = y.to_numpy(dtype=float)
        return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
                "quantiles": {q: float(np.quantile(v, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
                "max": float(v.max()), "skew": float(y.skew())}
    counts = y.astype(str).value_counts()
    return {"classes": {str(k): int(v) for k, v in counts.items()},
            "imbalance": float(counts.max() / max(counts.min(), 1))}


def leakage(frame: Any, problem: Problem, features: dict[str, str]) -> dict[str, float]:
    """Columns that alone predict the target almost perfectly (cross-validated, on a sample):
    a small tree on numbers and dates, the per-level target purity for categories."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    data = frame[frame[problem.target].notna()]
    data = data.sample(min(len(data), SAMPLE), random_state=0)
    y = problem.encode(data[problem.target])
    regression = problem.kind == "regression"
    found = {}
    for name, kind in features.items():
        column = data[name]
        if kind in ("categorical", "text"):
            value = _level_purity(column, y, regression)
        else:
            x = column.to_numpy(dtype=float) if kind == "numeric" else _as_days(column)
            x = np.nan_to_num(x, nan=np.nanmin(x) - 1 if np.isfinite(np.nanmin(x)) else 0).reshape(-1, 1)
            model = (DecisionTreeRegressor(max_depth=6, random_state=0) if regression
                     else DecisionTreeClassifier(max_depth=6, random_state=0))
            value = float(np.mean(cross_val_score(model, x, y, cv=3, scoring="r2" if regression
                                                  else "balanced_accuracy")))
        if value >= LEAK_SCORE:
            found[name] = value
    return found


def _as_days(column: Any) -> np.ndarray:
    import pandas as pd

    dates = pd.to_datetime(column, errors="coerce", format="mixed")
    return ((dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0).to_numpy(dtype=float)


def _level_purity(column: Any, y: np.ndarray, regression: bool) -> float:
    """How well each level's training-half majority (or mean) predicts the other half."""
    import pandas as pd
    from sklearn.metrics import balanced_accuracy_score, r2_score

    keys = column.astype(str).to_numpy()
    half = np.arange(len(keys)) % 2 == 0
    frame = pd.DataFrame({"k": keys[half], "y": y[half]})
    if regression:
        table = frame.groupby("k")["y"].mean()
        guess = pd.Series(keys[~half]).map(table).fillna(float(np.mean(y[half]))).to_numpy()
        return float(r2_score(y[~half], guess))
    table = frame.groupby("k")["y"].agg(lambda v: v.value_counts().idxmax())
    guess = pd.Series(keys[~half]).map(table).fillna(-1).to_numpy(dtype=np.int64)  # -1: a level not seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "y_pred contains classes not in y_true": the -1s
        return float(balanced_accuracy_score(y[~half], guess))


def correlations(frame: Any, features: dict[str, str], problem: Problem, top: int = 15) -> dict[str, Any]:
    """Pearson correlations of numeric features with each other (strong pairs) and with the
    target (regression, or binary as 0/1)."""
    numeric = [n for n, k in features.items() if k == "numeric"]
    if not numeric:
        return {"pairs": [], "with_target": {}}
    matrix = frame[numeric].corr().to_numpy()
    pairs = [{"a": numeric[i], "b": numeric[j], "r": round(float(matrix[i, j]), 4)}
             for i in range(len(numeric)) for j in range(i + 1, len(numeric))
             if np.isfinite(matrix[i, j]) and abs(matrix[i, j]) >= 0.9]
    with_target: dict[str, float] = {}
    if problem.kind != "multiclass":
        kept = frame[frame[problem.target].notna()]
        y = problem.encode(kept[problem.target]).astype(float)
        for name in numeric:
            x = kept[name].to_numpy(dtype=float)
            ok = np.isfinite(x)
            if ok.sum() > 2 and np.std(x[ok]) > 0:
                with_target[name] = round(float(np.corrcoef(x[ok], y[ok])[0, 1]), 4)
        with_target = dict(sorted(with_target.items(), key=lambda kv: -abs(kv[1]))[:top])
    return {"pairs": sorted(pairs, key=lambda p: -abs(p["r"]))[:top], "with_target": with_target}

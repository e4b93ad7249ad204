"""Pipelines from a plain spec: preprocessing per column kind, the model, CV predictions, scores.

This module imports only numpy, pandas and scikit-learn (models by dotted class name), so the
generated ``candidate.py`` of a run is this file's source plus the run's spec: what ocula
fitted and what the script rebuilds are the same code. A spec is JSON:

    {"kind": "binary", "columns": {"age": "numeric", "city": "categorical", ...},
     "members": [{"model": "lightgbm.LGBMClassifier", "params": {...}, "flavour": "tree",
                  "weight": 1.0}], "metric": "f1", "folds": 5, "seed": 0}
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

MISSING = "__missing__"
ONE_HOT_MAX = 20  # categorical columns with more levels are target-encoded (fitted on training folds)


class AsText(BaseEstimator, TransformerMixin):
    """Categorical cells as strings, missing ones as one level of their own (mixed types and
    NaN otherwise break scikit-learn's encoders)."""

    def fit(self, X: Any, y: Any = None) -> AsText:
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X)
        return frame.astype(object).where(frame.notna(), MISSING).astype(str).to_numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class DatetimeParts(BaseEstimator, TransformerMixin):
    """A date column as year, month, day, weekday, hour and days since 1970 (NaN when missing)."""

    PARTS = ("year", "month", "day", "day_of_week", "hour")

    def fit(self, X: Any, y: Any = None) -> DatetimeParts:
        return self

    def transform(self, X: Any) -> np.ndarray:
        column = pd.to_datetime(pd.DataFrame(X).iloc[:, 0], errors="coerce", format="mixed")
        parts = [getattr(column.dt, p).astype(float) for p in self.PARTS]
        days = (column - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
        return np.column_stack([*parts, days.astype(float)])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*self.PARTS, "days"], dtype=object)


class TextColumn(BaseEstimator, TransformerMixin):
    """One text column as a 1-D array of strings (missing: empty), for a vectorizer."""

    def fit(self, X: Any, y: Any = None) -> TextColumn:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return pd.DataFrame(X).iloc[:, 0].fillna("").astype(str).to_numpy()


def column_transformer(columns: dict[str, str], flavour: str, levels: dict[str, int]) -> ColumnTransformer:
    """Preprocessing per column kind. ``flavour`` "linear" scales numbers and one-hot encodes
    (for linear models, k-NN, MLP); "tree" imputes and ordinal-encodes. ``levels`` counts each
    categorical column's distinct values: above ONE_HOT_MAX they are target-encoded."""
    parts = []
    for name, kind in columns.items():
        if kind == "numeric":
            steps = [SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)]
            parts.append((name, make_pipeline(*steps, *([StandardScaler()] if flavour == "linear" else [])), [name]))
        elif kind == "categorical" and levels.get(name, 0) > ONE_HOT_MAX:
            encoder = TargetEncoder(cv=KFold(5, shuffle=True, random_state=0))
            parts.append((name, make_pipeline(AsText(), encoder, *([StandardScaler()] if flavour == "linear" else [])),
                          [name]))
        elif kind == "categorical":
            encoder = (OneHotEncoder(handle_unknown="ignore", sparse_output=False) if flavour == "linear" else
                       OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
            parts.append((name, make_pipeline(AsText(), encoder), [name]))
        elif kind == "datetime":
            steps = [DatetimeParts(), SimpleImputer(strategy="median", keep_empty_features=True)]
            parts.append((name, make_pipeline(*steps, *([StandardScaler()] if flavour == "linear" else [])), [name]))
        elif kind == "text":
            vectorizer = TfidfVectorizer(max_features=200, min_df=2, sublinear_tf=True)
            parts.append((name, make_pipeline(TextColumn(), vectorizer), [name]))
        else:
            raise ValueError(f"column {name!r}: unknown kind {kind!r}")
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def make_model(path: str, params: dict[str, Any]) -> Any:
    """``"sklearn.linear_model.LogisticRegression"`` and its parameters -> an unfitted estimator."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**params)


def build(member: dict[str, Any], spec: dict[str, Any]) -> Pipeline:
    """One member of a spec as an unfitted scikit-learn pipeline (preprocessing + model)."""
    prep = column_transformer(spec["columns"], member["flavour"], spec.get("levels", {}))
    return Pipeline([("prep", prep), ("model", make_model(member["model"], member["params"]))])


def predict(pipeline: Any, X: pd.DataFrame, kind: str, n_classes: int = 0) -> np.ndarray:
    """Class probabilities (rows x classes) for classification, values for regression."""
    if kind == "regression":
        return np.asarray(pipeline.predict(X), dtype=float)
    probs = np.zeros((len(X), n_classes))
    probs[:, np.asarray(pipeline.classes_, dtype=int)] = pipeline.predict_proba(X)  # a fold may miss a class
    return probs


def blend(predictions: list[np.ndarray], weights: list[float]) -> np.ndarray:
    total = float(sum(weights))
    return sum(w / total * p for w, p in zip(weights, predictions))


def folds(spec: dict[str, Any], y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The k folds, stratified for classification; the same for every candidate and the script."""
    splitter = (KFold if spec["kind"] == "regression" else StratifiedKFold)(
        n_splits=spec["folds"], shuffle=True, random_state=spec["seed"])
    return list(splitter.split(np.zeros(len(y)), y))


def decide(pred: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class indices from probabilities: the most probable class, or for a binary problem with a
    ``threshold``, class 1 when its probability reaches it."""
    if threshold is not None and pred.shape[1] == 2:
        return (pred[:, 1] >= threshold).astype(np.int64)
    return pred.argmax(axis=1)


def score(metric: str, y: np.ndarray, pred: np.ndarray, kind: str, threshold: float | None = None) -> float:
    """``metric`` of predictions (probabilities or values) against encoded labels or targets."""
    from sklearn import metrics

    if kind == "regression":
        return {"rmse": lambda: float(np.sqrt(metrics.mean_squared_error(y, pred))),
                "mae": lambda: float(metrics.mean_absolute_error(y, pred)),
                "r2": lambda: float(metrics.r2_score(y, pred))}[metric]()
    labels = decide(pred, threshold)
    classes = np.arange(pred.shape[1])
    if metric == "accuracy":
        return float(metrics.accuracy_score(y, labels))
    if metric == "balanced_accuracy":
        return float(metrics.balanced_accuracy_score(y, labels))
    if metric == "f1" and kind == "binary":  # of class 1: the minority class (see the run's card)
        return float(metrics.f1_score(y, labels, zero_division=0))
    if metric == "f1":
        return float(metrics.f1_score(y, labels, average="macro", labels=classes, zero_division=0))
    if metric == "auc":
        if kind == "binary":
            return float(metrics.roc_auc_score(y, pred[:, 1]))
        clipped = np.clip(pred, 1e-12, 1)
        return float(metrics.roc_auc_score(y, clipped / clipped.sum(axis=1, keepdims=True), multi_class="ovr",
                                           labels=classes))
    if metric == "log_loss":
        return float(metrics.log_loss(y, np.clip(pred, 1e-15, 1), labels=classes))
    raise ValueError(f"unknown metric {metric!r}")


def cross_val_predict(spec: dict[str, Any], X: pd.DataFrame, y: np.ndarray, member: dict[str, Any],
                      after_fold: Any = None) -> np.ndarray:
    """Out-of-fold predictions of one member; ``after_fold(i, seconds_fit, seconds_predict)`` may
    raise to stop early (a time budget)."""
    n_classes = 0 if spec["kind"] == "regression" else int(y.max()) + 1
    oof = np.zeros(len(y)) if spec["kind"] == "regression" else np.zeros((len(y), n_classes))
    for i, (train, valid) in enumerate(folds(spec, y)):
        began = time.perf_counter()
        pipeline = build(member, spec).fit(X.iloc[train], y[train])
        fitted = time.perf_counter()
        oof[valid] = predict(pipeline, X.iloc[valid], spec["kind"], n_classes)
        if after_fold is not None:
            after_fold(i, fitted - began, time.perf_counter() - fitted)
    return oof


def fold_scores(spec: dict[str, Any], y: np.ndarray, oof: np.ndarray) -> list[float]:
    return [score(spec["metric"], y[valid], oof[valid], spec["kind"], spec.get("threshold"))
            for _, valid in folds(spec, y)]


def prepare(frame: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows a spec learns from (a target value, of a known class) as features and encoded
    targets: class i is ``spec["labels"][i]``."""
    target = spec["target"]
    rows = frame[frame[target].notna()]
    if spec["kind"] != "regression":
        index = {str(label): i for i, label in enumerate(spec["labels"])}
        rows = rows[rows[target].astype(str).isin(index)]
        y = np.array([index[str(v)] for v in rows[target]], dtype=np.int64)
    else:
        y = rows[target].to_numpy(dtype=float)
    return rows[list(spec["columns"])].reset_index(drop=True), y

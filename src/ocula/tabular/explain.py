"""Which columns the model relies on: permutation importance on a held-out fold (any model),
and mean |SHAP| from LightGBM's and XGBoost's own TreeSHAP (exact and cheap) where the best
model has such a member."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ocula.tabular import pipeline

SAMPLE = 2000
STACKED_ROWS = 50_000  # shuffled copies predicted at once


def permutation(spec: dict[str, Any], X: Any, y: np.ndarray, members: list[dict[str, Any]],
                weights: list[float], repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """The drop in the metric when one column is shuffled, on (a sample of) the first fold's
    validation rows, with the members fitted on its training rows. Larger is more important."""
    train, valid = pipeline.folds(spec, y)[0]
    n_classes = 0 if spec["kind"] == "regression" else int(y.max()) + 1
    fitted = [pipeline.build(m, spec).fit(X.iloc[train], y[train]) for m in members]
    rng = np.random.default_rng(seed)
    columns = list(spec["columns"])
    repeats = repeats if len(columns) <= 20 else 1
    valid = rng.permutation(valid)[:min(SAMPLE, STACKED_ROWS // (len(columns) * repeats + 1))]
    X_valid, y_valid = X.iloc[valid].reset_index(drop=True), y[valid]
    copies = []  # every (column, repeat) shuffle stacked, so each member predicts once
    for column in columns:
        for _ in range(repeats):
            shuffled = X_valid.copy()
            shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            copies.append(shuffled)
    stacked = pd.concat([X_valid, *copies], ignore_index=True)
    blended = pipeline.blend([pipeline.predict(f, stacked, spec["kind"], n_classes) for f in fitted], weights)
    sign = 1.0 if spec["greater_is_better"] else -1.0
    n = len(valid)

    def scored(block: int) -> float:
        return sign * pipeline.score(spec["metric"], y_valid, blended[block * n:(block + 1) * n], spec["kind"],
                                     spec.get("threshold"))

    base = scored(0)
    drops = {c: float(np.mean([base - scored(1 + i * repeats + r) for r in range(repeats)]))
             for i, c in enumerate(columns)}
    return dict(sorted(drops.items(), key=lambda kv: -kv[1]))


def tree_shap(fitted: Any, X: Any, seed: int = 0) -> dict[str, float] | None:
    """Mean |SHAP value| per input column of a fitted LightGBM or XGBoost pipeline (the
    contributions of a column's encoded features summed); None for other models."""
    model, prep = fitted.named_steps["model"], fitted.named_steps["prep"]
    module = type(model).__module__.split(".")[0]
    if module not in ("lightgbm", "xgboost"):
        return None
    rows = X.sample(min(len(X), SAMPLE), random_state=seed)
    encoded = prep.transform(rows)
    if module == "lightgbm":
        contributions = np.asarray(model.predict(encoded, pred_contrib=True))
    else:
        import xgboost

        contributions = np.asarray(model.get_booster().predict(xgboost.DMatrix(encoded), pred_contribs=True))
    width = encoded.shape[1] + 1  # every output's contributions end with its bias
    contributions = contributions.reshape(len(rows), -1, width)[:, :, :-1]
    per_feature = np.abs(contributions).mean(axis=(0, 1))
    out = {}
    for column, where in prep.output_indices_.items():
        if column != "remainder" and where.stop > where.start:
            out[column] = float(per_feature[where].sum())
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))

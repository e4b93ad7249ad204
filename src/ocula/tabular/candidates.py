"""The candidate models: each a scikit-learn-compatible class by name, its preprocessing
flavour, sensible defaults and a small search space (in ``ocula.tune``'s format).

A candidate whose library is not installed (CatBoost is optional) is skipped, not an error.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    name: str
    classifier: str  # dotted class path
    regressor: str
    flavour: str  # "linear" (scaled, one-hot) or "tree" (ordinal)
    defaults: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    threads: str | None = None  # the parameter that sets the model's threads
    seeded: bool = True

    def available(self) -> bool:
        return importlib.util.find_spec(self.classifier.split(".")[0]) is not None

    def member(self, kind: str, params: dict[str, Any], *, threads: int, seed: int) -> dict[str, Any]:
        """A spec member (see ``pipeline``) with ``params`` over the defaults."""
        settings = {**self.defaults, **params}
        if self.threads:
            settings[self.threads] = threads
        if self.seeded:
            settings["random_state"] = seed
        own = _for(kind, settings)
        return {"candidate": self.name, "model": self.classifier if kind != "regression" else self.regressor,
                "params": {k.removeprefix("classifier_").removeprefix("regressor_"): v for k, v in own.items()},
                "flavour": self.flavour}

    def space_for(self, kind: str) -> dict[str, Any]:
        """The search space of this problem kind (``classifier_``/``regressor_`` entries kept or dropped)."""
        return _for(kind, self.space)


def _for(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without those prefixed for the other problem kind."""
    other = "classifier_" if kind == "regression" else "regressor_"
    return {k: v for k, v in settings.items() if not k.startswith(other)}


def _log(low: float, high: float, kind: str = "float") -> dict[str, Any]:
    return {"type": kind, "low": low, "high": high, "log": True}


CANDIDATES = [
    Candidate("lightgbm", "lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor", "tree",
              defaults={"verbosity": -1, "n_estimators": 200, "learning_rate": 0.05, "subsample_freq": 1},
              space={"n_estimators": _log(50, 1000, "int"), "learning_rate": _log(0.01, 0.3),
                     "num_leaves": _log(8, 128, "int"), "min_child_samples": _log(5, 100, "int"),
                     "subsample": {"type": "float", "low": 0.5, "high": 1.0},
                     "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},
                     "reg_lambda": _log(1e-3, 10.0)},
              threads="n_jobs"),
    Candidate("linear", "sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge", "linear",
              defaults={"classifier_max_iter": 2000, "classifier_C": 1.0, "regressor_alpha": 1.0},
              space={"classifier_C": _log(1e-3, 100.0), "regressor_alpha": _log(1e-3, 100.0)}, seeded=False),
    Candidate("random_forest", "sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.RandomForestRegressor",
              "tree", defaults={"n_estimators": 100, "min_samples_leaf": 1, "max_features": "sqrt"},
              space={"min_samples_leaf": _log(1, 20, "int"), "max_features": ["sqrt", 0.5, 1.0]}, threads="n_jobs"),
    Candidate("extra_trees", "sklearn.ensemble.ExtraTreesClassifier", "sklearn.ensemble.ExtraTreesRegressor",
              "tree", defaults={"n_estimators": 100, "min_samples_leaf": 1, "max_features": "sqrt"},
              space={"min_samples_leaf": _log(1, 20, "int"), "max_features": ["sqrt", 0.5, 1.0]}, threads="n_jobs"),
    Candidate("xgboost", "xgboost.XGBClassifier", "xgboost.XGBRegressor", "tree",
              defaults={"n_estimators": 200, "learning_rate": 0.1, "max_depth": 6, "tree_method": "hist"},
              space={"n_estimators": _log(50, 1000, "int"), "learning_rate": _log(0.01, 0.3),
                     "max_depth": {"type": "int", "low": 2, "high": 10},
                     "min_child_weight": _log(0.5, 20.0), "subsample": {"type": "float", "low": 0.5, "high": 1.0},
                     "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0}},
              threads="n_jobs"),
    Candidate("catboost", "catboost.CatBoostClassifier", "catboost.CatBoostRegressor", "tree",
              defaults={"iterations": 300, "verbose": 0, "allow_writing_files": False},
              space={"depth": {"type": "int", "low": 4, "high": 8}, "learning_rate": _log(0.02, 0.3),
                     "l2_leaf_reg": _log(1.0, 10.0)},
              threads="thread_count"),
    Candidate("knn", "sklearn.neighbors.KNeighborsClassifier", "sklearn.neighbors.KNeighborsRegressor", "linear",
              defaults={"n_neighbors": 15, "weights": "distance"},
              space={"n_neighbors": _log(3, 60, "int"), "weights": ["uniform", "distance"]}, threads="n_jobs",
              seeded=False),
    Candidate("mlp", "sklearn.neural_network.MLPClassifier", "sklearn.neural_network.MLPRegressor", "linear",
              defaults={"hidden_layer_sizes": [128, 64], "early_stopping": True, "max_iter": 200, "alpha": 1e-4},
              space={"alpha": _log(1e-6, 1e-1), "learning_rate_init": _log(1e-4, 1e-2)}),
]
# Tried in this order, strong and cheap first: under a short budget the last ones may not run.
ORDER = ("lightgbm", "xgboost", "linear", "catboost", "extra_trees", "random_forest", "knn", "mlp")
CANDIDATES.sort(key=lambda c: ORDER.index(c.name))
BY_NAME = {c.name: c for c in CANDIDATES}

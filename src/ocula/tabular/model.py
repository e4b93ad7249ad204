"""A tabular run's model: the fitted pipelines, saved with skops (no pickle), and the card that
holds the feature schema, the labels and the problem. Loading checks every stored type against
an exact list of what ocula's own pipelines hold (ALLOWED_TYPES), so a model file from elsewhere
stays data.

``TabularModel.answers(frame)`` gives Autopilot's keys per row: ``predicted_label``,
``probability``, ``probabilities``, ``labels`` (classification) or ``prediction`` (regression).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ocula.errors import DataError, ModelError, first_line
from ocula.storage import read_json, write_json
from ocula.tabular import pipeline

MODEL_FILE, CARD_FILE = "model.skops", "card.json"

# Every type a model file written by `ocula automl` holds, by full name: nothing else is loaded.
# skops itself trusts more (any scikit-learn estimator, numpy functions), and a
# FunctionTransformer with ``builtins.exec`` runs code, so the whole file is checked against this
# list before skops sees it. Found by fitting every candidate on every column kind and problem
# (tests/tabular/test_model_file.py keeps it exact). Reasons per group:
ALLOWED_TYPES = frozenset({
    # containers and scalars of any stored state
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.bytes", "builtins.bytearray",
    "builtins.slice", "collections.OrderedDict", "collections.defaultdict",
    # fitted arrays, their dtypes and the seeded generators of the forests and the MLP
    "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.int64", "numpy.random.mtrand.RandomState",
    # ocula.tabular.pipeline: the column kinds' preprocessing
    "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer", "sklearn.impute._base.MissingIndicator",
    "sklearn.preprocessing._data.StandardScaler", "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder", "sklearn.preprocessing._target_encoder.TargetEncoder",
    "sklearn.model_selection._split.KFold",  # the target encoder's folds
    "sklearn.feature_extraction.text.TfidfVectorizer", "sklearn.feature_extraction.text.TfidfTransformer",
    "ocula.tabular.pipeline.AsText", "ocula.tabular.pipeline.DatetimeParts", "ocula.tabular.pipeline.TextColumn",
    # the candidate models (ocula.tabular.candidates) and the parts they keep when fitted
    "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.basic.Booster",
    "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor", "xgboost.core.Booster",
    "catboost.core.CatBoostClassifier", "catboost.core.CatBoostRegressor",
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.linear_model._ridge.Ridge",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier", "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier", "sklearn.tree._classes.ExtraTreeRegressor", "sklearn.tree._tree.Tree",
    "sklearn.neighbors._classification.KNeighborsClassifier", "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.preprocessing._label.LabelBinarizer", "sklearn.preprocessing._label.LabelEncoder",  # MLP, XGBoost
})
# How skops rebuilds a node. A builtin function is stored as a TypeNode under its own name
# (``builtins.exec``), which the exact list above refuses; Python functions, methods, operators and
# partials have loaders of their own, never used by ocula, so those are refused whatever they name.
ALLOWED_LOADERS = frozenset({
    "ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "TypeNode", "BytesNode", "BytearrayNode",
    "SliceNode", "DefaultDictNode", "NdArrayNode", "DTypeNode", "RandomStateNode", "TreeNode",
})


def stored_types(path: Path) -> set[tuple[str, str]]:
    """Every (full type name, skops loader) in a skops file's schema, read as JSON: nothing is
    imported or built."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[tuple[str, str]] = set()
    stack = [schema]
    while stack:  # iterative: a deeply nested schema cannot exhaust the stack
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                found.add((f"{node.get('__module__')}.{node.get('__class__')}", str(node.get("__loader__"))))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def refused_types(path: Path) -> list[str]:
    """The stored types (with their loader when that is what refuses them) outside the allow-lists."""
    return sorted({name if name not in ALLOWED_TYPES else f"{name} as {loader}"
                   for name, loader in stored_types(path)
                   if name not in ALLOWED_TYPES or loader not in ALLOWED_LOADERS})


class SchemaError(DataError):
    """A row does not fit the model's feature schema; ``column`` names the column."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


class TabularModel:
    def __init__(self, members: list[Any], weights: list[float], card: dict[str, Any]) -> None:
        self.members, self.weights, self.card = members, weights, card
        self.kind = card["problem"]["kind"]
        self.labels = card["problem"]["labels"]
        self.schema: dict[str, dict[str, Any]] = card["schema"]

    def save(self, model_dir: Path) -> None:
        import skops.io as sio

        model_dir.mkdir(parents=True, exist_ok=True)
        sio.dump({"members": self.members, "weights": self.weights}, model_dir / MODEL_FILE)
        write_json(model_dir / CARD_FILE, self.card)

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> TabularModel:
        """The model of a run's ``model/`` folder; ModelError (one line) for a damaged, foreign or
        unsafe file, before anything in it is built."""
        import skops.io as sio

        path = Path(model_dir) / MODEL_FILE
        try:
            card = read_json(Path(model_dir) / CARD_FILE)
            foreign = refused_types(path)
            if foreign:
                shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
                raise ModelError(f"{path} refused: it holds types ocula does not load: {shown}",
                                 hint="only model files written by `ocula automl` are loaded, for safety")
            stored = sio.load(path, trusted=sorted(ALLOWED_TYPES))  # every stored type is on it (checked above)
            return cls(stored["members"], stored["weights"], card)
        except ModelError:
            raise
        except KeyError as error:
            raise ModelError(f"the tabular model in {model_dir} lacks {first_line(error)}",
                             hint="only models written by `ocula automl` are loaded") from None
        except Exception as error:  # noqa: BLE001 - a damaged or foreign file: one line
            raise ModelError(f"cannot load the tabular model {path}: {first_line(error, 200)}") from None

    def check(self, frame: Any) -> Any:
        """The frame's feature columns in the schema's order, numbers as numbers; SchemaError names
        the first column that is missing or holds a value of the wrong type."""
        import pandas as pd

        if len(frame) == 0:
            raise DataError("no rows to predict")
        missing = [c for c in self.schema if c not in frame.columns]
        if missing:
            raise SchemaError(missing[0], f"missing column {missing[0]!r} (the model needs: {', '.join(self.schema)})")
        out = pd.DataFrame(index=frame.index)
        for name, column in self.schema.items():
            values = frame[name]
            nested = values.map(lambda v: isinstance(v, dict | list | tuple | set)) if values.dtype == object else None
            if nested is not None and nested.any():
                raise SchemaError(name, f"column {name!r} holds a {type(values[nested].iloc[0]).__name__}; "
                                        "values must be numbers, strings, booleans or null")
            if column["kind"] == "numeric":
                out[name] = _numbers(name, values)
            else:
                out[name] = values
        return out

    def predict(self, frame: Any) -> np.ndarray:
        """Probabilities (rows x classes) or values, blended over the members."""
        X = self.check(frame)
        n = len(self.labels)
        return pipeline.blend([pipeline.predict(m, X, self.kind, n) for m in self.members], self.weights)

    def answers(self, frame: Any) -> list[dict[str, Any]]:
        predictions = self.predict(frame)
        if self.kind == "regression":
            return [{"prediction": float(v)} for v in predictions]
        rows = []
        for probs, best in zip(predictions, pipeline.decide(predictions, self.card.get("threshold"))):
            rows.append({"predicted_label": self.labels[best], "probability": float(probs[best]),
                         "probabilities": [float(p) for p in probs], "labels": self.labels})
        return rows


def _numbers(name: str, values: Any) -> Any:
    """A numeric column as floats (empty cells missing); SchemaError for a value that is not a
    number or not finite (``inf``, ``1e400``, a 400-digit integer): no model is fitted on those."""
    import pandas as pd

    cleaned = values if pd.api.types.is_numeric_dtype(values) else values.replace("", np.nan)
    try:
        numbers = pd.to_numeric(cleaned, errors="coerce").astype(float)
    except OverflowError:  # an integer beyond float range, kept exact by the JSON parser
        numbers = cleaned.map(_float)
    wrong = numbers.isna() & cleaned.notna()
    if wrong.any():
        raise SchemaError(name, f"column {name!r} must be numeric; got {_shown(values[wrong].iloc[0])}")
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        raise SchemaError(name, f"column {name!r} must hold finite numbers; got {_shown(values[infinite].iloc[0])}")
    return numbers


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf")
    except (TypeError, ValueError):
        return float("nan")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"

"""A tabular run's model: the fitted pipelines, saved with skops (no pickle), and the card that
holds the feature schema, the labels and the problem. Loading checks every stored type against
the libraries ocula fits with, so a model file from elsewhere stays data.

``TabularModel.answers(frame)`` gives Autopilot's keys per row: ``predicted_label``,
``probability``, ``probabilities``, ``labels`` (classification) or ``prediction`` (regression).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ocula.errors import DataError, ModelError
from ocula.storage import read_json, write_json
from ocula.tabular import pipeline

MODEL_FILE, CARD_FILE = "model.skops", "card.json"
TRUSTED = ("sklearn.", "numpy.", "scipy.sparse.", "lightgbm.", "xgboost.", "catboost.", "ocula.tabular.pipeline.",
           "collections.OrderedDict", "builtins.")


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
    def load(cls, model_dir: Path) -> TabularModel:
        import skops.io as sio

        path = Path(model_dir) / MODEL_FILE
        try:
            card = read_json(Path(model_dir) / CARD_FILE)
            untrusted = sio.get_untrusted_types(file=path)
            foreign = [t for t in untrusted if not t.startswith(TRUSTED)]
            if foreign:
                raise ModelError(f"{path} holds types ocula does not load: {', '.join(foreign[:3])}",
                                 hint="only models written by `ocula automl` are served")
            stored = sio.load(path, trusted=untrusted)
        except ModelError:
            raise
        except Exception as error:  # noqa: BLE001 - a damaged or foreign file: one line
            raise ModelError(f"cannot load the tabular model {path}: {str(error).splitlines()[0][:200]}") from None
        return cls(stored["members"], stored["weights"], card)

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
            if column["kind"] == "numeric":
                cleaned = values if pd.api.types.is_numeric_dtype(values) else values.replace("", np.nan)
                numbers = pd.to_numeric(cleaned, errors="coerce")
                wrong = numbers.isna() & cleaned.notna()
                if wrong.any():
                    raise SchemaError(name, f"column {name!r} must be numeric; got {values[wrong].iloc[0]!r}")
                out[name] = numbers.astype(float)
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

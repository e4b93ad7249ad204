"""The model card: everything serving needs to rebuild a model's input pipeline.

Written next to the weights as ``model/card.json``. Strict on read: a card with missing or
unknown keys is refused, because a silently-defaulted mean or crop is a train/serve skew.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocula.data.stats import STATS
from ocula.errors import ModelError
from ocula.models.preprocess import RGB, Preprocessing

FORMAT_VERSION = 1
CARD_NAME = "card.json"


@dataclass
class ModelCard:
    labels: list[str]
    arch: str
    input_size: int
    mean: RGB
    std: RGB
    interpolation: str
    crop_pct: float
    mode: str
    pretrained: str  # where the starting weights came from, in words
    eval_transform: str  # exact eval transform in words (Preprocessing.description)
    metrics: dict[str, float] = field(default_factory=dict)
    # Logits are divided by it before the softmax (fitted at the end of training; 1 = as trained,
    # and what a card written before calibration existed means).
    temperature: float = 1.0
    # Per image statistic (ocula.data.stats), the [low, high] range of the training photos: with a
    # reject option, an image outside it gets no label. Empty: not recorded (cards before it).
    image_ranges: dict[str, list[float]] = field(default_factory=dict)
    # Multi-label: independent sigmoid probabilities per class; a class is predicted when its
    # probability reaches its threshold (tuned on validation). Single-label cards: False, [].
    multi_label: bool = False
    thresholds: list[float] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_preprocessing(
        cls,
        preprocessing: Preprocessing,
        *,
        labels: list[str],
        arch: str,
        mode: str,
        pretrained: str,
        metrics: dict[str, float] | None = None,
    ) -> ModelCard:
        """A card whose preprocessing fields and eval_transform come from one Preprocessing."""
        return cls(
            labels=list(labels),
            arch=arch,
            input_size=preprocessing.input_size,
            mean=preprocessing.mean,
            std=preprocessing.std,
            interpolation=preprocessing.interpolation,
            crop_pct=preprocessing.crop_pct,
            mode=mode,
            pretrained=pretrained,
            eval_transform=preprocessing.description,
            metrics=dict(metrics or {}),
        )

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.input_size, self.mean, self.std, self.interpolation, self.crop_pct)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def decision_thresholds(self) -> list[float]:
        """Multi-label: each class's threshold (0.5 where none was tuned)."""
        return self.thresholds or [0.5] * len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    def to_json(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash never leaves a half-written card next to good weights.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model card {path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model card {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelError(f"model card {path} must hold a JSON object, got {type(data).__name__}")
        return cls._from_dict(data, str(path))

    @classmethod
    def _from_dict(cls, data: dict[str, Any], where: str) -> ModelCard:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        unknown = sorted(set(data) - set(fields))
        if missing:
            raise ModelError(f"model card {where} is missing key(s): {', '.join(missing)}", hint="re-export the model")
        if unknown:
            raise ModelError(
                f"model card {where} has unknown key(s): {', '.join(unknown)}",
                hint="it may come from a newer ocula; upgrade ocula or remove the keys",
            )
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelError(
                f"model card {where} has format_version {version!r}; this ocula reads {FORMAT_VERSION}",
                hint="use the ocula version that wrote the model",
            )
        try:
            card = cls(
                labels=_str_list(data["labels"]),
                arch=_str(data["arch"]),
                input_size=_int(data["input_size"]),
                mean=_rgb(data["mean"]),
                std=_rgb(data["std"]),
                interpolation=_str(data["interpolation"]),
                crop_pct=float(data["crop_pct"]),
                mode=_str(data["mode"]),
                pretrained=_str(data["pretrained"]),
                eval_transform=_str(data["eval_transform"]),
                metrics={_str(k): float(v) for k, v in dict(data.get("metrics", {})).items()},
                temperature=_temperature(data.get("temperature", 1.0), where),
                image_ranges=_ranges(data.get("image_ranges", {}), where),
                multi_label=_bool(data.get("multi_label", False), where, "multi_label"),
                thresholds=_thresholds(data.get("thresholds", []), where),
                format_version=version,
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model card {where} has a bad value: {exc}", hint="re-export the model") from None
        if not card.labels:
            raise ModelError(f"model card {where} has no labels")
        if card.thresholds and len(card.thresholds) != len(card.labels):
            raise ModelError(f"model card {where} has {len(card.thresholds)} thresholds for {len(card.labels)} labels",
                             hint="retrain the run, or remove the thresholds to use 0.5 for every label")
        if len(set(card.labels)) != len(card.labels):
            dupes = sorted({label for label in card.labels if card.labels.count(label) > 1})
            raise ModelError(f"model card {where} repeats label(s): {', '.join(dupes)}")
        Preprocessing(card.input_size, card.mean, card.std, card.interpolation, card.crop_pct)  # validates
        return card

    @classmethod
    def load(cls, run_or_model_dir: str | os.PathLike[str]) -> ModelCard:
        """The card of a run directory, its ``model/`` directory, or a card.json path."""
        return cls.from_json(find_card(run_or_model_dir))


def find_card(run_or_model_dir: str | os.PathLike[str]) -> Path:
    """``<dir>/model/card.json`` or ``<dir>/card.json`` (or the path itself if it is a file)."""
    path = Path(run_or_model_dir)
    if path.is_file():
        return path
    for candidate in (path / "model" / CARD_NAME, path / CARD_NAME):
        if candidate.is_file():
            return candidate
    if not path.exists():
        raise ModelError(f"{path} does not exist", hint="pass a run directory such as runs/<run-id>")
    raise ModelError(
        f"no model card in {path}",
        hint=f"expected {path / 'model' / CARD_NAME} or {path / CARD_NAME}; pass a run directory or its model/ folder",
    )


def _bool(value: Any, where: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"model card {where} has a bad {name} {value!r}: true or false is expected")
    return value


def _thresholds(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value):
        raise ModelError(f"model card {where} has bad thresholds: a list of probabilities in [0, 1] is expected",
                         hint="retrain the run, or remove the thresholds to use 0.5 for every label")
    return [float(v) for v in value]


def _temperature(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"model card {where} has a bad temperature {value!r}: a positive number is expected",
                         hint="set it to 1.0 (uncalibrated) or retrain the run")
    return float(value)


def _ranges(value: Any, where: str) -> dict[str, list[float]]:
    bad = ModelError(f"model card {where} has bad image_ranges: expected {{statistic: [low, high]}} with statistics "
                     f"among {', '.join(STATS)}", hint="remove the key (the reject option then uses confidence alone)")
    if not isinstance(value, dict):
        raise bad
    ranges = {}
    for name, pair in value.items():
        if name not in STATS or not isinstance(pair, list) or len(pair) != 2 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in pair) \
                or pair[0] > pair[1]:
            raise bad
        ranges[name] = [float(pair[0]), float(pair[1])]
    return ranges


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return [_str(v) for v in value]


def _rgb(value: Any) -> RGB:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise TypeError(f"expected 3 numbers (R, G, B), got {value!r}")
    r, g, b = (float(v) for v in value)
    return (r, g, b)

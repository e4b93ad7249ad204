from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocula.errors import ModelError
from ocula.models import ModelCard, Preprocessing


def _card() -> ModelCard:
    pre = Preprocessing(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 0.875)
    return ModelCard.from_preprocessing(
        pre, labels=["apple", "banana"], arch="tf_efficientnet_lite0", mode="finetune",
        pretrained="ImageNet-1k", metrics={"validation:accuracy": 0.9},
    )


def test_round_trip(tmp_path: Path) -> None:
    card = _card()
    card.to_json(tmp_path / "run" / "model" / "card.json")
    again = ModelCard.from_json(tmp_path / "run" / "model" / "card.json")
    assert again == card
    assert again.eval_transform.startswith("resize shorter side to 256 (bicubic, antialias), centre crop 224")
    assert again.preprocessing == Preprocessing(224, (0.5,) * 3, (0.5,) * 3, "bicubic", 0.875)
    assert ModelCard.load(tmp_path / "run") == card
    assert ModelCard.load(tmp_path / "run" / "model") == card
    assert json.loads((tmp_path / "run" / "model" / "card.json").read_text())["format_version"] == 1


def test_unknown_and_missing_keys_are_named(tmp_path: Path) -> None:
    data = _card().to_dict()
    (tmp_path / "extra.json").write_text(json.dumps({**data, "colour": "blue"}))
    with pytest.raises(ModelError, match="unknown key\\(s\\): colour"):
        ModelCard.from_json(tmp_path / "extra.json")
    del data["labels"], data["crop_pct"]
    (tmp_path / "missing.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="missing key\\(s\\): labels, crop_pct"):
        ModelCard.from_json(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_size": "224"}, "bad value"),
        ({"mean": [0.5, 0.5]}, "bad value"),
        ({"labels": []}, "no labels"),
        ({"labels": ["a", "a"]}, "repeats label"),
        ({"format_version": 2}, "format_version 2"),
        ({"crop_pct": 3.0}, "crop_pct"),
        ({"temperature": "hot"}, "bad temperature 'hot': a positive number"),
        ({"temperature": -1.0}, "bad temperature -1.0"),
        ({"temperature": 0}, "bad temperature 0"),
        ({"temperature": True}, "bad temperature True"),
        ({"image_ranges": {"contrast": [9, 3]}}, "bad image_ranges"),
        ({"image_ranges": {"loudness": [0, 1]}}, "bad image_ranges"),
        ({"image_ranges": {"contrast": [0, "x"]}}, "bad image_ranges"),
        ({"image_ranges": [1, 2]}, "bad image_ranges"),
    ],
)
def test_bad_values(tmp_path: Path, change: dict[str, object], message: str) -> None:
    (tmp_path / "card.json").write_text(json.dumps({**_card().to_dict(), **change}))
    with pytest.raises(ModelError, match=message):
        ModelCard.from_json(tmp_path / "card.json")


def test_a_card_from_before_calibration_loads_uncalibrated(tmp_path: Path) -> None:
    data = _card().to_dict()
    assert data.pop("temperature") == 1.0
    (tmp_path / "card.json").write_text(json.dumps(data))
    assert ModelCard.from_json(tmp_path / "card.json").temperature == 1.0
    (tmp_path / "card.json").write_text(json.dumps({**data, "temperature": 0.42}))
    assert ModelCard.from_json(tmp_path / "card.json").temperature == 0.42


def test_a_card_from_before_image_ranges_loads_without_them(tmp_path: Path) -> None:
    data = _card().to_dict()
    assert data.pop("image_ranges") == {}
    (tmp_path / "card.json").write_text(json.dumps(data))
    assert ModelCard.from_json(tmp_path / "card.json").image_ranges == {}
    ranges = {"contrast": [3.5, 90.0], "sharpness": [0.1, 6.0]}
    (tmp_path / "card.json").write_text(json.dumps({**data, "image_ranges": ranges}))
    assert ModelCard.from_json(tmp_path / "card.json").image_ranges == ranges


def test_a_non_finite_temperature_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text(json.dumps(_card().to_dict()).replace('"temperature": 1.0', '"temperature": NaN'))
    with pytest.raises(ModelError, match="bad temperature nan") as raised:
        ModelCard.from_json(tmp_path / "card.json")
    assert "\n" not in str(raised.value)


def test_unreadable_or_absent(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelCard.load(tmp_path)
    with pytest.raises(ModelError, match="no model card"):
        ModelCard.load(tmp_path / "..")
    with pytest.raises(ModelError, match="does not exist"):
        ModelCard.load(tmp_path / "nope")

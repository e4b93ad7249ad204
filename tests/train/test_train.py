"""End-to-end training on generated images, with the real offline EfficientNet-Lite0 weights."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

import ocula
from ocula.config import TrainConfig
from ocula.storage import RunIndex, read_json

pytestmark = pytest.mark.slow
SMALL = {"image_size": 64, "batch_size": 16, "quiet": True}
LINE = re.compile(r"^epoch=\d+ train:loss=\S+ train:accuracy=\S+ validation:loss=\S+ "
                  r"validation:accuracy=\S+ validation:top_k_accuracy=\S+$", re.M)


def test_head_mode_run_directory_is_complete(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=15)
    run = ocula.train(data, mode="head", augment="crop", epochs=6, out=str(tmp_path / "run"),
                      runs_root=str(tmp_path / "runs"), **SMALL)
    assert run.path == tmp_path / "run"
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert set(config) == set(TrainConfig(data="x").to_dict())  # every default written out
    metrics = read_json(run.path / "metrics.json")
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 7))
    for key in ("train:loss", "train:accuracy", "validation:loss", "validation:accuracy",
                "validation:top_k_accuracy"):
        assert key in metrics["epochs"][0]
    assert metrics["best"]["validation:accuracy"] >= 0.8  # three easy classes; chance is 0.33
    assert metrics["wall_seconds"] > 0 and metrics["train_images_per_second"] > 0
    state = torch.load(run.path / "model" / "weights.pt", weights_only=True)
    assert state["classifier.weight"].shape[0] == 3
    card = read_json(run.path / "model" / "card.json")
    assert card["labels"] == ["circle", "square", "stripes"] and card["mean"] == [0.5, 0.5, 0.5]
    assert card["input_size"] == 64 and "centre crop 64" in card["eval_transform"]
    audit = read_json(run.path / "data_audit.json")
    assert "findings" in audit
    split = read_json(run.path / "split.json")
    assert len(split["train"]) == 36 and len(split["val"]) == 9  # stratified 20% of 45
    assert len(LINE.findall((run.path / "log.txt").read_text())) == 6
    row = RunIndex(tmp_path / "runs").get("run")
    assert row["status"] == "completed" and row["val_accuracy"] == metrics["best"]["validation:accuracy"]
    top = run.predict([split["val"][0][0]], top_k=2)[0]
    assert top.error is None and len(top.ranked) == 2 and sum(p for _, p in top.ranked) <= 1.0 + 1e-6
    assert top.label == top.ranked[0][0] and top.ranked[0][1] >= top.ranked[1][1]


def test_same_seed_same_result(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=10)
    a = ocula.train(data, mode="head", epochs=3, out=str(tmp_path / "a"), runs_root=str(tmp_path), **SMALL)
    b = ocula.train(data, mode="head", epochs=3, out=str(tmp_path / "b"), runs_root=str(tmp_path), **SMALL)
    assert a.metrics["epochs"][-1]["validation:loss"] == b.metrics["epochs"][-1]["validation:loss"]
    assert torch.equal(torch.load(a.path / "model/weights.pt", weights_only=True)["classifier.weight"],
                       torch.load(b.path / "model/weights.pt", weights_only=True)["classifier.weight"])


def test_finetune_runs_head_then_backbone(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=10)
    run = ocula.train(data, mode="finetune", head_epochs=2, epochs=2, augment="phone",
                      out=str(tmp_path / "run"), runs_root=str(tmp_path), **SMALL)
    phases = [e["phase"] for e in run.metrics["epochs"]]
    assert phases == ["head", "head", "backbone", "backbone"]
    assert run.metrics["epochs"][-1]["train_images_per_second"] > 0


def test_consistency_loss_trains_on_three_views_of_each_image(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=10)
    run = ocula.train(data, mode="finetune", head_epochs=1, epochs=2, augment="phone", consistency=12,
                      out=str(tmp_path / "run"), runs_root=str(tmp_path), **SMALL)
    backbone = [e for e in run.metrics["epochs"] if e["phase"] == "backbone"]
    assert len(backbone) == 2 and all(e["train:loss"] > 0 for e in backbone)
    assert "consistency loss x12" in (run.path / "log.txt").read_text()
    assert yaml.safe_load((run.path / "config.yaml").read_text())["consistency"] == 12


def test_incremental_training_with_two_extra_classes(tmp_path, make_dataset):
    first = make_dataset(tmp_path / "three", classes=("a", "b", "c"), per_class=10)
    run1 = ocula.train(first, mode="head", epochs=3, out=str(tmp_path / "run1"), runs_root=str(tmp_path), **SMALL)
    more = make_dataset(tmp_path / "five", classes=("a", "b", "c", "d", "e"), per_class=10)
    run2 = ocula.train(more, mode="head", epochs=3, pretrained=str(run1.path), out=str(tmp_path / "run2"),
                       runs_root=str(tmp_path), **SMALL)
    assert run2.card.labels == ["a", "b", "c", "d", "e"]
    assert "run1" in run2.card.pretrained
    old = torch.load(run1.path / "model/weights.pt", weights_only=True)
    new = torch.load(run2.path / "model/weights.pt", weights_only=True)
    assert torch.equal(old["conv_stem.weight"], new["conv_stem.weight"])  # backbone came from run 1
    assert new["classifier.weight"].shape[0] == 5


def test_small_cnn_from_scratch_in_full_mode(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=12, size=32)
    run = ocula.train(data, model="small_cnn", mode="full", epochs=3, out=str(tmp_path / "run"),
                      runs_root=str(tmp_path), quiet=True)
    assert run.card.input_size == 32 and len(run.metrics["epochs"]) == 3


@pytest.mark.parametrize("imbalance, said", [("auto", "class-weighted loss (auto"), ("sampler", "class-balanced sampling"),
                                             ("none", "no reweighting")])
def test_imbalance_handling_is_switched_on_and_said(tmp_path, make_dataset, imbalance, said):
    data = make_dataset(tmp_path / "data", classes=("common",), per_class=40)
    make_dataset(data, classes=("x", "rare"), per_class=5, seed=1)  # 'rare' has 5 images against 40
    run = ocula.train(data, mode="head", epochs=2, imbalance=imbalance, out=str(tmp_path / "run"),
                      runs_root=str(tmp_path), **SMALL)
    assert said in run.metrics["imbalance"]
    assert said in (run.path / "log.txt").read_text()


def test_budget_is_respected(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=12)
    run = ocula.train(data, budget="20s", out=str(tmp_path / "run"), runs_root=str(tmp_path), **SMALL)
    assert run.metrics["wall_seconds"] <= 20 * 1.25  # the guard may finish the epoch it is in
    assert run.metrics["epochs"]


def test_training_calibrates_the_probabilities_on_validation(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=25)
    run = ocula.train(data, mode="head", epochs=3, val_fraction=0.3, out=str(tmp_path / "run"),
                      runs_root=str(tmp_path), **SMALL)
    fitted = run.metrics["calibration"]
    # --calibrate phone (the default): the 24 validation images and 20 corrupted copies of each
    # (3000 // 24 copies, at most the 20 mild corruption/severity pairs).
    assert fitted["method"] == "temperature"
    assert fitted["fitted_on"] == "the validation split (24 images) and 480 copies under mild phone-photo corruptions"
    assert run.card.temperature != 1.0 and fitted["temperature"] == pytest.approx(run.card.temperature, abs=1e-4)
    assert fitted["log_loss_after"] <= fitted["log_loss_before"]
    # The validation report scores through the calibrated card: its ECE is the one measured after fitting.
    report = read_json(run.path / "evaluation.json")
    assert report["calibration"] == fitted
    assert report["summary"]["calibration"]["ece"] == pytest.approx(fitted["ece_after"], abs=1e-3)
    assert f"temperature of {run.card.temperature:.3f}" in (run.path / "report.html").read_text()
    assert f"calibration: temperature {run.card.temperature:.3f} fitted on 24 validation images" in \
        (run.path / "log.txt").read_text()

    clean = ocula.train(data, mode="head", epochs=3, val_fraction=0.3, calibrate="temperature",
                        out=str(tmp_path / "clean"), runs_root=str(tmp_path), **SMALL)
    assert clean.metrics["calibration"]["fitted_on"] == "the validation split (24 images)"
    assert clean.card.temperature != run.card.temperature  # the corrupted copies moved the fit

    plain = ocula.train(data, mode="head", epochs=3, val_fraction=0.3, calibrate="none", out=str(tmp_path / "plain"),
                        runs_root=str(tmp_path), **SMALL)
    assert plain.card.temperature == 1.0 and plain.metrics["calibration"] == {"method": "none"}
    assert "no temperature was fitted" in (plain.path / "report.html").read_text()

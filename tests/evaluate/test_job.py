"""The evaluation job end to end: real training runs, generated images, the real report.

The three diagnosis cases of issue 3 are built here with real training, not synthetic curves:
an underfitting from-scratch model, an overfitting one, and a well-fit transfer-learning run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ocula
from ocula.errors import UsageError
from ocula.storage import read_json

pytestmark = pytest.mark.slow
SMALL = {"image_size": 64, "batch_size": 16, "quiet": True}
REGULARISATION = ("dropout", "weight decay", "weight-decay", "label smoothing", "regulari")


def _kinds(findings: list[dict], level: str | None = None) -> set[str]:
    return {f["kind"] for f in findings if level is None or f["level"] == level}


def _remedies(finding: dict) -> str:
    return " ".join([finding["title"], *finding["actions"]]).lower()


def test_underfitting_from_scratch_one_epoch(tmp_path, make_dataset):
    """A from-scratch CNN trained one epoch on 300 images underfits; the remedy is not dropout."""
    data = make_dataset(tmp_path / "data", per_class=100, size=32)
    run = ocula.train(data, model="small_cnn", pretrained="none", mode="full", augment="none", epochs=1,
                      out=str(tmp_path / "run"), runs_root=str(tmp_path), quiet=True)
    report = read_json(run.path / "evaluation.json")
    under = [f for f in report["findings"] if f["kind"] == "underfitting"]
    assert under and under[0]["level"] == "major", report["findings"]
    actions = " ".join(under[0]["actions"]).lower()
    assert "pretrained" in actions or "transfer" in actions
    assert "data" in actions or "augment" in actions
    for finding in report["findings"]:  # nothing anywhere tells an underfitting model to regularise more
        for phrase in ("add dropout", "more dropout", "increase dropout", "increase weight decay"):
            assert phrase not in _remedies(finding)
    assert "overfitting" not in _kinds(report["findings"])
    # The confident mistakes carry Grad-CAM heatmaps of the predicted and the true class.
    html = (run.path / "report.html").read_text()
    assert report["summary"]["mistakes"] > 0
    assert html.count('class=explained') == min(16, report["summary"]["mistakes"])
    assert "where it saw" in html and "crop tighter or augment" in html


def _noise_classes(root: Path, per_class: int, seed: int) -> Path:
    """Classes told apart by a faint pattern under strong noise: memorisable, hard to generalise."""
    rng = np.random.default_rng(seed)
    patterns = [np.sin(np.arange(32) * f)[None, :, None] * 12 for f in (0.3, 0.9, 1.7)]
    for c, pattern in enumerate(patterns):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(128 + pattern + rng.normal(0, 70, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def test_overfitting_many_epochs_no_augmentation_small_subset(tmp_path):
    train = _noise_classes(tmp_path / "train", per_class=8, seed=1)
    val = _noise_classes(tmp_path / "val", per_class=20, seed=2)
    run = ocula.train(train, val=str(val), model="small_cnn", pretrained="none", mode="full", augment="none",
                      epochs=40, patience=40, batch_size=8, label_smoothing=0.0, weight_decay=0.0,
                      out=str(tmp_path / "run"), runs_root=str(tmp_path), quiet=True)
    epochs = run.metrics["epochs"]
    assert epochs[-1]["train:accuracy"] >= 0.9  # it memorised the 24 training images
    report = read_json(run.path / "evaluation.json")
    over = [f for f in report["findings"] if f["kind"] == "overfitting"]
    assert over and over[0]["level"] == "major", (report["findings"], epochs[-1])
    assert "augment" in " ".join(over[0]["actions"]).lower()
    assert "underfitting" not in _kinds(report["findings"])


def test_well_fit_transfer_learning_has_no_major_finding(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "data", per_class=40)
    run = ocula.train(data, mode="head", augment="crop", epochs=8, out=str(tmp_path / "run"),
                      runs_root=str(tmp_path), **SMALL)
    report = read_json(run.path / "evaluation.json")
    assert report["summary"]["accuracy"] >= 0.9
    assert not _kinds(report["findings"], "major"), report["findings"]
    assert "healthy" in _kinds(report["findings"])
    # Training wrote the report beside its own metrics, which it left alone.
    assert (run.path / "report.html").exists() and (run.path / "plots" / "confusion.png").exists()
    assert "epochs" in read_json(run.path / "metrics.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small head-mode run, and a holdout set with a test split holding a corrupt file."""
    from tests.conftest import write_dataset

    root = tmp_path_factory.mktemp("eval")
    run = ocula.train(write_dataset(root / "data", per_class=12), mode="head", epochs=4, out=str(root / "run"),
                      runs_root=str(root), **SMALL)
    holdout = root / "holdout"
    write_dataset(holdout / "train", per_class=4, seed=1)
    write_dataset(holdout / "test", per_class=6, seed=2)
    (holdout / "test" / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write_dataset(holdout / "test", classes=("hexagon",), per_class=2, seed=3)  # a class the model never saw
    return run, holdout


def test_evaluate_writes_report_metrics_and_shift(trained, tmp_path):
    run, holdout = trained
    result = ocula.evaluate(run.path, holdout, split="test", shift="phone", shift_images=9, out=tmp_path / "ev",
                            quiet=True)
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert report["split"] == "test" and report["summary"]["n"] == 18  # 3 classes x 6, broken one skipped
    assert result.accuracy == report["summary"]["accuracy"]
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert "broken.jpg" in reasons and sum("not one the model" in r for r in reasons.values()) == 2
    shift = report["robustness"]
    assert shift["images"] == 9 and len(shift["by_corruption"]) == 10
    assert all(len(v["accuracy"]) == 3 for v in shift["by_corruption"].values())
    assert report["throughput"]["images_per_second"] > 0 and report["throughput"]["peak_rss_mb"] > 0
    html = result.html.read_text()
    assert "broken.jpg" in html and "robustness" in html
    assert "How far to trust this estimate" in html and "ImageNet-C" in html  # the estimate's measured error
    plots = {p.name for p in (tmp_path / "ev" / "plots").glob("*.png")}
    assert plots >= {"confusion.png", "reliability.png", "learning_curves.png", "robustness.png"}
    # Same seed, same corrupted images, same figures.
    again = ocula.evaluate(run.path, holdout, split="test", shift="phone", shift_images=9, out=tmp_path / "ev2",
                           quiet=True)
    assert again.report["robustness"]["by_corruption"] == shift["by_corruption"]


def test_evaluate_default_folder_and_compare(trained, tmp_path):
    run, holdout = trained
    ocula.evaluate(run.path, holdout, split="test", quiet=True)
    assert (run.path / "evaluations" / "test" / "report.html").exists()
    rows = ocula.compare([str(run.path), str(run.path / "evaluations" / "test")])
    assert [r["split"] for r in rows] == ["test", "test"] and rows[0]["accuracy"] == rows[1]["accuracy"]
    assert ocula.compare([str(run.path)], split="validation")[0]["split"] == "validation"


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "tset"}, "unknown split 'tset'"),
    ({"shift": "fone"}, "unknown shift 'fone'"),
    ({"split": "val"}, "has no val split"),
])
def test_evaluate_bad_arguments(trained, kwargs, message):
    run, holdout = trained
    with pytest.raises(UsageError, match=message):
        ocula.evaluate(run.path, holdout, quiet=True, **kwargs)


def _chromium() -> str:
    """Debian's chromium, which .ci/run installs; outside CI a machine without it skips."""
    import os
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return found


def test_report_opens_in_headless_chromium_with_every_image(trained, tmp_path):
    """The page a user double-clicks: it loads offline, every image decodes, nothing is fetched."""
    sync_api = pytest.importorskip("playwright.sync_api")
    run, holdout = trained
    result = ocula.evaluate(run.path, holdout, split="test", shift="phone", shift_images=6, out=tmp_path / "ev",
                            quiet=True)
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(result.html.as_uri(), wait_until="load")
            images = page.evaluate("() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            headings = page.locator("h2").all_inner_texts()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    alts = [alt for alt, _, _ in images]
    assert {"confusion matrix", "reliability diagram", "learning curves", "accuracy under each corruption"} <= set(alts)
    assert all(complete and width > 0 for _, complete, width in images), images
    assert {"Diagnosis", "Robustness under phone-photo shift", "Confusion matrix", "Most confident mistakes"} <= set(
        headings)
    assert all(url.startswith(("file:", "data:")) for url in requests), requests  # self-contained
    assert (tmp_path / "report.png").stat().st_size > 50_000

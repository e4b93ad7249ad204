"""The reject option: `--min-confidence` on serve, batch and predict, and the report's threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import ocula
from ocula.models.card import ModelCard
from tests.conftest import run_cli, write_dataset
from tests.serve.test_server import Server, encode

pytestmark = pytest.mark.slow
CLASSES = ("circle", "square", "stripes")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small CNN trained long enough to be sure of its own kind of image (about 10 s)."""
    root = tmp_path_factory.mktemp("reject")
    data = write_dataset(root / "data", classes=CLASSES, per_class=20)
    return ocula.train(data, model="small_cnn", pretrained="none", mode="full", epochs=12, lr=0.003,
                       out=str(root / "run"), runs_root=str(root), quiet=True)


@pytest.fixture(scope="module")
def photos(run, tmp_path_factory):
    """JPEG files: a blank grey frame, random noise, and training-like images (the training
    pictures again, re-encoded: what a customer re-sending a clear photo would send)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    arrays = {"grey.jpg": np.full((64, 64, 3), 128, np.uint8),
              "noise.jpg": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}
    for path in sorted((run.path.parent / "data").rglob("*.png"))[::13][:4]:
        arrays[f"clear_{path.stem}.jpg"] = np.asarray(Image.open(path).convert("RGB"))
    for name, array in arrays.items():
        (folder / name).write_bytes(encode(Image.fromarray(array)))
    return folder


def test_training_records_the_range_of_its_photos_in_the_card(run):
    ranges = ModelCard.load(run.path).image_ranges
    assert set(ranges) == {"brightness", "contrast", "sharpness", "saturation"}
    assert all(0 <= low < high for low, high in ranges.values())


def test_serve_rejects_a_blank_and_a_noise_jpeg_and_answers_a_clear_photo(run, photos):
    server = Server(str(run.path), "--min-confidence", "0.6")
    try:
        for name in ("grey.jpg", "noise.jpg"):
            status, headers, answer = server.invoke((photos / name).read_bytes(), accept="application/json;verbose")
            assert status == 200
            assert answer["rejected"] is True and answer["predicted_label"] is None, (name, answer)
            assert answer["reason"] and len(answer["probabilities"]) == len(CLASSES)  # SageMaker's list intact
            assert headers["x-rejected"] == "true"
        for path in sorted(photos.glob("clear_*.jpg")):
            status, headers, answer = server.invoke(path.read_bytes(), accept="application/json;verbose")
            assert status == 200 and answer["rejected"] is False, (path.name, answer)
            assert answer["predicted_label"] == path.stem.split("_")[1]
            assert "reason" not in answer
        # The plain answer stays SageMaker's bare list of probabilities; the header carries the verdict.
        status, headers, plain = server.invoke((photos / "grey.jpg").read_bytes())
        assert status == 200 and isinstance(plain, list) and len(plain) == len(CLASSES)
        assert headers["x-rejected"] == "true"
        # A request may ask for another threshold: 0 rejects only what is unlike every training photo; 2 is a 400.
        status, headers, answer = server.invoke((photos / "noise.jpg").read_bytes(), accept="application/json;verbose",
                                                query="?min_confidence=0")
        assert status == 200 and answer["rejected"] is True and "than any training photo" in answer["reason"]
        clear = sorted(photos.glob("clear_*.jpg"))[0]
        status, headers, answer = server.invoke(clear.read_bytes(), accept="application/json;verbose",
                                                query="?min_confidence=0.999")
        assert status == 200 and answer["rejected"] is True and "below 0.999" in answer["reason"]
        status, _, error = server.invoke((photos / "grey.jpg").read_bytes(), query="?min_confidence=2")
        assert status == 400 and error["error"] == "invalid_parameter"
        status, _, metrics = server.request("GET", "/metrics")
        assert b"ocula_rejected_images_total 5.0" in metrics
    finally:
        server.stop()


def test_a_server_without_the_option_answers_as_before(run, photos):
    server = Server(str(run.path))
    try:
        status, headers, answer = server.invoke((photos / "grey.jpg").read_bytes(), accept="application/json;verbose")
        assert status == 200 and "rejected" not in answer and answer["predicted_label"] in CLASSES
        assert "x-rejected" not in headers
    finally:
        server.stop()


def test_batch_marks_rejected_lines_and_counts_them(run, photos, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = run_cli("batch", str(run.path), str(photos), "--out", str(out), "--min-confidence", "0.6")
    assert result.returncode == 0, result.stderr
    lines = {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line) for line in out.read_text().splitlines()}
    assert len(lines) == 6
    for name in ("grey.jpg", "noise.jpg"):
        assert lines[name]["rejected"] is True and lines[name]["label"] is None and lines[name]["prediction"] is None
        assert lines[name]["reason"] and 0 < lines[name]["probability"] <= 1
    clear = [line for name, line in lines.items() if name.startswith("clear_")]
    assert all(line["rejected"] is False and line["label"] in CLASSES for line in clear)
    assert "rejected: 2 of 6" in result.stdout


def test_predict_says_why_an_image_gets_no_label(run, photos):
    result = run_cli("predict", str(run.path), str(photos / "grey.jpg"), str(photos / "clear_circle_000.jpg"),
                     "--min-confidence", "0.6")
    assert result.returncode == 0, result.stderr
    grey, clear = result.stdout.split(str(photos / "clear_circle_000.jpg"))
    assert "rejected:" in grey and "ask for another photo" in grey
    assert "rejected" not in clear
    predictions = ocula.predict(run.path, [str(photos / "grey.jpg")], min_confidence=0.6)
    assert predictions[0].rejected and predictions[0].label is None and predictions[0].ranked


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
@pytest.mark.parametrize("command", ["predict", "batch", "serve"])
def test_a_min_confidence_outside_0_to_1_is_one_line_and_exit_2(run, photos, tmp_path, command, value):
    args = {"predict": ["predict", str(run.path), str(photos / "grey.jpg")],
            "batch": ["batch", str(run.path), str(photos), "--out", str(tmp_path / "p.jsonl")],
            "serve": ["serve", str(run.path), "--port", "18089"]}[command]
    result = run_cli(*args, f"--min-confidence={value}", timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"--min-confidence {value} is not a probability" in result.stderr
    assert not (tmp_path / "p.jsonl").exists()


def test_the_report_names_the_threshold_for_a_target_accuracy(run, tmp_path):
    data = run.path.parent / "data"
    result = run_cli("evaluate", str(run.path), str(data), "--split", "all", "--target-accuracy", "0.9",
                     "--out", str(tmp_path / "ev"))
    assert result.returncode == 0, result.stderr
    selective = json.loads((tmp_path / "ev" / "metrics.json").read_text())["summary"]["selective"]
    assert selective["target_accuracy"] == 0.9
    assert selective["accuracy"] is None or selective["accuracy"] >= 0.9 - 1e-9
    assert "selective prediction:" in result.stdout
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "Answer only when confident" in html and "--min-confidence" in html
    bad = run_cli("evaluate", str(run.path), str(data), "--target-accuracy", "1.5")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--target-accuracy 1.5" in bad.stderr

"""One inference path: every command's probabilities for the same images (calibrated with the
run's temperature) agree with the eager PyTorch reference to 1e-4, and a corrupt image in the middle of a batch is skipped and listed
by each command while the rest are scored.

One real run (trained here on generated images) goes through the training report, ``ocula
predict`` (PyTorch: not exported yet), ``ocula batch`` (which exports it), ``ocula evaluate``,
the Python API, ``ocula serve``, the monitoring baseline and the int8 check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ocula
from ocula.inference import Predictor
from ocula.serve.monitor import baseline
from ocula.storage import read_json
from tests.conftest import run_cli, write_dataset
from tests.serve.test_server import Server

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-path")
    run = ocula.train(write_dataset(root / "data", per_class=25), model="small_cnn", pretrained="none", mode="full",
                      epochs=2, val_fraction=0.3, out=str(root / "run"), runs_root=str(root), quiet=True)
    assert run.card.temperature != 1.0  # calibrated: every path must apply the same temperature
    holdout = write_dataset(root / "holdout", per_class=5, seed=4)
    (holdout / "square" / "square_002b.png").write_bytes(b"this is not a PNG")  # sorts into the middle
    images = [str(p) for p in sorted(holdout.rglob("*.png"))]
    reference = Predictor.from_run(run.path, backend="torch")
    expected = {}
    for path in images + [row[0] for row in read_json(run.path / "split.json")["val"]]:
        if "002b" not in path:
            expected[path] = reference.probabilities(reference.crop(reference.prepare(Path(path).read_bytes()))[None])[0]
    return {"root": root, "run": run, "holdout": holdout, "images": images, "bad": images[images.index(
        str(holdout / "square" / "square_002b.png"))], "expected": expected, "labels": reference.labels}


def _check_record(setup, record):
    """A batch-format line: its top-k (all three classes here) are the reference's probabilities."""
    row = setup["expected"][record["source"]]
    assert len(record["top_k"]) == len(setup["labels"])
    for label, probability in record["top_k"]:
        assert abs(probability - row[setup["labels"].index(label)]) <= TOLERANCE
    assert record["label"] == setup["labels"][int(row.argmax())]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_command_gives_the_same_probabilities(setup):
    run, bad, good = setup["run"], setup["bad"], [p for p in setup["images"] if p != setup["bad"]]

    # The training run's own report scored its validation images through the predictor.
    report = _lines(run.path / "evaluation_predictions.jsonl")
    assert len(report) == len(read_json(run.path / "split.json")["val"])
    for record in report:
        _check_record(setup, record)

    # `ocula predict` on a model not exported yet (PyTorch), a corrupt file among the others.
    assert not (run.path / "model" / "model.onnx").exists()
    result = run_cli("predict", str(run.path), *setup["images"], "--top-k", "3")
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n")
    printed: dict[str, dict[str, float]] = {}
    current = None
    for line in blocks:
        if line and not line.startswith(" "):
            current, printed[line] = line, {}
        elif line.strip() and not line.strip().startswith("skipped"):
            probability, label = line.split()
            printed[current][label] = float(probability)
    assert list(printed) == setup["images"] and printed[bad] == {}
    assert f"{bad}\n  skipped: not_image" in result.stdout and f"skipped 1 of {len(setup['images'])} images" in result.stderr
    for path in good:
        for label, probability in printed[path].items():
            assert abs(probability - setup["expected"][path][setup["labels"].index(label)]) <= TOLERANCE
    only_bad = run_cli("predict", str(run.path), bad)
    assert only_bad.returncode == 2 and only_bad.stderr.strip().splitlines()[-1] == \
        "error: none of the images could be read (run `ocula data check` on them)"

    # `ocula batch` exports the model and scores on ONNX Runtime.
    out = setup["root"] / "preds.jsonl"
    result = run_cli("batch", str(run.path), str(setup["holdout"]), "--out", str(out), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    assert (run.path / "model" / "model.onnx").exists()
    records = _lines(out)
    assert [r["source"] for r in records] == good
    for record in records:
        _check_record(setup, record)
    assert [e["source"] for e in _lines(setup["root"] / "preds.errors.jsonl")] == [bad]

    # `ocula evaluate`: its predictions.jsonl, and the corrupt file in the report's skipped list.
    result = run_cli("evaluate", str(run.path), str(setup["holdout"]), "--top-k", "3", "--out",
                     str(setup["root"] / "ev"), "--quiet")
    assert result.returncode == 0, result.stderr
    evaluation = read_json(setup["root"] / "ev" / "metrics.json")
    assert evaluation["skipped"] == [{"path": bad, "reason": "not_image"}] and "onnxruntime" in evaluation["engine"]
    records = _lines(setup["root"] / "ev" / "predictions.jsonl")
    assert [r["source"] for r in records] == good and all("true_label" in r for r in records)
    for record in records:
        _check_record(setup, record)

    # The Python API, now on the export.
    predictions = ocula.predict(run.path, setup["images"], top_k=3)
    assert [p.source for p in predictions] == setup["images"]
    for prediction in predictions:
        if prediction.source == bad:
            assert prediction.error.reason == "not_image" and prediction.ranked == [] and prediction.label is None
            continue
        for label, probability in prediction.ranked:
            assert abs(probability - setup["expected"][prediction.source][setup["labels"].index(label)]) <= TOLERANCE

    # `ocula serve`: the full probability vector of each image.
    server = Server(str(run.path))
    try:
        for path in good:
            status, _, body = server.invoke(Path(path).read_bytes(), "image/png", accept="application/json;verbose")
            assert status == 200 and body["labels"] == setup["labels"]
            np.testing.assert_allclose(body["probabilities"], setup["expected"][path], atol=TOLERANCE)
        status, _, body = server.invoke(Path(bad).read_bytes(), "image/png")
        assert status == 400 and body["error"] == "invalid_image"
    finally:
        server.stop()


def test_monitor_and_int8_score_through_the_predictor(setup, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(setup["run"].path, copy)
    split = read_json(copy / "split.json")
    val = [row[0] for row in split["val"]]
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    split["val"].insert(len(val) // 2, [str(damaged), split["val"][0][1], "0" * 40])
    (copy / "split.json").write_text(json.dumps(split))

    base = baseline(copy, log=lambda message: None)
    assert base["skipped"] == {"not_image": 1} and [i["path"] for i in base["images"]] == val
    for image in base["images"]:
        row = setup["expected"][image["path"]]
        assert abs(image["confidence"] - row.max()) <= TOLERANCE and image["predicted"] == int(row.argmax())

    result = run_cli("export", str(copy), "--int8", "--max-drop", "1")
    assert result.returncode == 0, result.stderr
    int8 = read_json(copy / "model" / "export.json")["int8"]
    labels = [int(row[1]) for row in split["val"] if row[0] != str(damaged)]
    reference = np.mean([int(setup["expected"][p].argmax()) == y for p, y in zip(val, labels)])
    assert int8["validation_images"] == len(val) and int8["accuracy_fp32"] == pytest.approx(reference, abs=1e-4)


def _four_views(reference: Predictor, path: str) -> np.ndarray:
    """--tta by hand: the mean probabilities of the centre crop, its mirror image and the top-left and
    bottom-right crops of the resized image, sliced here without the predictor's view code."""
    array = reference.prepare(Path(path).read_bytes()).array
    size, (height, width) = reference.card.input_size, array.shape[:2]
    top, left = round((height - size) / 2), round((width - size) / 2)
    crops = [array[top:top + size, left:left + size], array[top:top + size, left:left + size][:, ::-1],
             array[:size, :size], array[height - size:, width - size:]]
    return reference.probabilities(np.stack([np.ascontiguousarray(c.transpose(2, 0, 1)) for c in crops])).mean(0)


def _wide_copies(setup, root: Path) -> Path:
    """The holdout's good images, widened to 3:2 with noise on the right, so that the corner crops
    (and the mirror image) really differ from the centre crop: the class folders stay the same."""
    from PIL import Image

    rng = np.random.default_rng(7)
    for path in setup["images"]:
        if path == setup["bad"]:
            continue
        image = np.asarray(Image.open(path).convert("RGB"))
        height, width = image.shape[:2]
        wide = np.concatenate([image, rng.integers(0, 90, (height, width // 2, 3), dtype=np.uint8)], axis=1)
        target = root / Path(path).parent.name / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(wide).save(target)
    return root


def test_tta_averages_four_views_in_predict_batch_evaluate_and_the_api(setup, tmp_path):
    run = setup["run"]
    holdout = _wide_copies(setup, tmp_path / "wide")
    good = [str(p) for p in sorted(holdout.rglob("*.png"))]
    reference = Predictor.from_run(run.path, backend="torch")
    expected = {path: _four_views(reference, path) for path in good}
    single = {path: reference.probabilities(reference.crop(reference.prepare(Path(path).read_bytes()))[None])[0]
              for path in good}
    assert max(np.abs(expected[p] - single[p]).max() for p in good) > 1e-3, "the views should matter"

    out = tmp_path / "tta.jsonl"
    result = run_cli("batch", str(run.path), str(holdout), "--out", str(out), "--top-k", "3", "--tta")
    assert result.returncode == 0, result.stderr
    assert "test-time augmentation: 4 views" in result.stdout + result.stderr
    records = _lines(out)
    assert sorted(r["source"] for r in records) == good
    for record in records:
        for label, probability in record["top_k"]:
            assert abs(probability - expected[record["source"]][setup["labels"].index(label)]) <= TOLERANCE

    result = run_cli("evaluate", str(run.path), str(holdout), "--tta", "--quiet")
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip()).parent
    assert folder.name.endswith("-tta")  # never overwrites the plain evaluation
    evaluation = read_json(folder / "metrics.json")
    assert evaluation["tta"] == ["centre", "mirrored", "top-left", "bottom-right"]
    for record in _lines(folder / "predictions.jsonl"):
        assert abs(record["probability"] - expected[record["source"]].max()) <= TOLERANCE

    result = run_cli("predict", str(run.path), good[0], "--tta", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines()[1:]:
        probability, label = line.split()
        assert abs(float(probability) - expected[good[0]][setup["labels"].index(label)]) <= TOLERANCE
    for prediction in ocula.predict(run.path, good, top_k=3, tta=True):
        for label, probability in prediction.ranked:
            assert abs(probability - expected[prediction.source][setup["labels"].index(label)]) <= TOLERANCE

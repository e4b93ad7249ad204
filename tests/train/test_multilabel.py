"""Multi-label end to end: photos with one or two coloured objects, labels = the colours present.
Training detects the multi-label CSV, tunes thresholds, and every path answers with several labels:
the report (mAP, per-label F1), `ocula predict`, `ocula batch` (on ONNX Runtime), and the endpoint."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

import ocula
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}


def _photo(names: list[str], rng) -> Image.Image:
    pixels = rng.integers(90, 150, (96, 96, 3)).astype(np.uint8)
    for j, name in enumerate(names):
        pixels[30:66, 8 + 48 * j:44 + 48 * j] = COLOURS[name]
    return Image.fromarray(pixels)


def _dataset(root, n: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = ["path,label"]
    for i in range(n):
        names = list(rng.choice(list(COLOURS), int(rng.integers(1, 3)), replace=False))
        _photo(names, rng).save(root / f"{i:03d}.png")
        rows.append(f"{i:03d}.png,{'|'.join(names)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    (root / "data").mkdir()
    data = _dataset(root / "data", 160, seed=0)
    return ocula.train(str(data), mode="head", epochs=12, lr=0.01, out=str(root / "run"), runs_root=str(root),
                       quiet=True)


def test_training_detects_multi_label_and_tunes_thresholds(run):
    assert run.card.multi_label and len(run.card.thresholds) == 4
    evaluation = json.loads((run.path / "evaluation.json").read_text())
    summary = evaluation["summary"]
    assert summary["multi_label"] and summary["mAP"] > 0.85 and summary["micro_f1"] > 0.7
    assert {row["label"] for row in summary["per_label"]} == set(COLOURS)
    html = (run.path / "report.html").read_text()
    assert "mAP" in html and "Per label" in html and "What it misses and what it adds" in html
    split = json.loads((run.path / "split.json").read_text())
    assert isinstance(split["train"][0][1], list)  # label indices per image


def test_compare_shows_the_multi_label_runs_map(run, tmp_path):
    result = run_cli("compare", str(run.path), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert rows[0]["mAP"] > 0.85 and rows[0]["ece"] is None


def test_predict_batch_and_endpoint_answer_with_several_labels(run, tmp_path):
    from tests.serve.test_server import Server

    rng = np.random.default_rng(11)
    two = tmp_path / "two.png"
    _photo(["red", "blue"], rng).save(two)
    one = tmp_path / "one.png"
    _photo(["green"], rng).save(one)

    result = run_cli("predict", str(run.path), str(two), str(one), "--explain", "--explain-dir", str(tmp_path / "heat"))
    assert result.returncode == 0, result.stderr
    heatmaps = sorted(p.name for p in (tmp_path / "heat").glob("*.png"))
    assert heatmaps == ["001-two-blue.png", "001-two-red.png", "002-one.png"]  # one per predicted label
    lines = result.stdout.splitlines()
    chosen = [line.split("labels: ")[1] for line in lines if line.strip().startswith("labels:")]
    assert set(chosen[0].split(", ")) == {"red", "blue"} and chosen[1] == "green"

    out = tmp_path / "preds.jsonl"
    result = run_cli("batch", str(run.path), str(tmp_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(records["two.png"]["labels"]) == {"red", "blue"} and len(records["two.png"]["probabilities"]) == 4
    assert (run.path / "model" / "model.onnx").exists()  # batch scored on ONNX Runtime: sigmoid in the graph

    capture = tmp_path / "capture"
    server = Server(str(run.path), "--capture-dir", str(capture))
    try:
        buffer = io.BytesIO()
        _photo(["yellow", "green"], rng).save(buffer, format="PNG")
        status, _, plain = server.invoke(buffer.getvalue(), "image/png")
        assert status == 200 and len(plain) == 4 and sum(plain) > 1.2  # independent probabilities
        body = json.dumps({"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]}).encode()
        status, _, verbose = server.invoke(body, "application/json", accept="application/json;verbose")
        assert status == 200 and set(verbose[0]["predicted_labels"]) == {"yellow", "green"}
    finally:
        server.stop()
    result = run_cli("monitor", str(run.path), str(capture), "--out", str(tmp_path / "monitor.json"))
    assert result.returncode == 0, result.stderr


def test_backbone_training_with_phone_consistency_and_mixup(tmp_path):
    (tmp_path / "data").mkdir()
    data = _dataset(tmp_path / "data", 40, seed=3)
    with data.open("a") as f:
        f.write("unlabelled.png,\n")  # listed and left out; the other rows train
    result = run_cli("train", str(data), "--mode", "head", "--epochs", "1", "--out", str(tmp_path / "cli"),
                     "--runs-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "labels.csv:42: unlabelled.png has no label; row left out" in result.stdout
    for options in ({"augment": "phone"}, {"augment": "crop", "mix": "mixup"}):
        run = ocula.train(str(data), mode="full", model="small_cnn", pretrained="none", epochs=1, image_size=64,
                          out=str(tmp_path / options["augment"]), runs_root=str(tmp_path), quiet=True, **options)
        assert run.card.multi_label and "validation:mAP" in json.loads((run.path / "metrics.json").read_text())["best"]


def test_an_interrupted_multi_label_run_resumes(tmp_path):
    (tmp_path / "data").mkdir()
    data = _dataset(tmp_path / "data", 40, seed=5)

    class Stop(Exception):
        pass

    def stop_after_first(record):
        raise Stop

    with pytest.raises(Stop):
        ocula.train(str(data), mode="full", model="small_cnn", pretrained="none", epochs=2, image_size=64,
                    out=str(tmp_path / "run"), runs_root=str(tmp_path), quiet=True, on_epoch=stop_after_first)
    run = ocula.train(resume=str(tmp_path / "run"), quiet=True)
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert run.card.multi_label and len(metrics["epochs"]) == 2 and "validation:mAP" in metrics["best"]

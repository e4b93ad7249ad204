"""Drift monitoring of a real run: captures made with the real predictor and Capture, read back by
``ocula monitor`` -- unchanged traffic is not flagged, darkened and blurred traffic is, by name."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

import ocula
from ocula.errors import UsageError
from ocula.serve.capture import Capture
from ocula.serve.monitor import MIN_SAMPLE, baseline, drift, read_capture, read_labels
from ocula.inference import Predictor
from ocula.storage import read_json
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A run with 45 validation images, and two captures: fresh images from the same generator,
    and the validation images darkened (x0.4) and blurred (Gaussian, radius 1.5)."""
    root = tmp_path_factory.mktemp("monitor")
    run = ocula.train(write_dataset(root / "data", per_class=50), model="small_cnn", pretrained="none", mode="full",
                      epochs=4, val_fraction=0.3, out=str(root / "run"), runs_root=str(root), quiet=True)
    runner = Predictor.from_run(run.path, log=lambda message: None)
    val = read_json(run.path / "split.json")["val"]
    fresh = sorted((write_dataset(root / "fresh", per_class=15, seed=1)).rglob("*.png"))
    same = [(path.read_bytes(), runner.labels.index(path.parent.name)) for path in fresh]
    shifted = [(_encode(_darken_and_blur(Image.open(path).convert("RGB"))), int(label)) for path, label, _ in val]
    captures = {"same": root / "capture-same", "shifted": root / "capture-shifted"}
    truth = {}
    for name, traffic in (("same", same), ("shifted", shifted)):
        capture = Capture(captures[name])
        for n, (data, label) in enumerate(traffic):
            prepared = runner.prepare(data)
            probabilities = runner.probabilities(runner.crop(prepared)[None])[0]
            capture.record(f"{name}-{n}", 0, prepared.array, prepared.size, probabilities, runner.labels)
            truth[f"{name}-{n}"] = runner.labels[label]
        capture.close()
    return {"root": root, "run": run, "runner": runner, "captures": captures, "truth": truth}


def _darken_and_blur(image: Image.Image) -> Image.Image:
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5))).astype(np.float32)
    return Image.fromarray((blurred * 0.4).astype(np.uint8))


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _labels_csv(path, truth, prefix):
    path.write_text("request_id,label\n" + "".join(f"{k},{v}\n" for k, v in truth.items() if k.startswith(prefix)))
    return path


def test_baseline_is_computed_once_from_the_validation_set(setup):
    run, runner = setup["run"], setup["runner"]
    base = baseline(run.path, predictor=runner, log=lambda message: None)
    assert len(base["images"]) == len(read_json(run.path / "split.json")["val"]) >= MIN_SAMPLE
    assert base["classes"] == runner.labels
    best = read_json(run.path / "metrics.json")["best"]
    assert base["validation_accuracy"] == pytest.approx(best["validation:accuracy"])
    assert {"brightness", "contrast", "sharpness", "saturation", "megapixels"} <= set(base["images"][0]["stats"])
    path = run.path / "monitor" / "baseline.json"
    stamp = path.stat().st_mtime_ns
    assert baseline(run.path, log=lambda message: None)["created"] == base["created"]  # reused, no runner needed
    assert path.stat().st_mtime_ns == stamp
    older = (run.path / "model" / "weights.pt").stat().st_mtime - 10
    os.utime(path, (older, older))  # the weights are newer than the baseline (a retrain): recomputed
    assert baseline(run.path, predictor=runner, log=lambda message: None)["created"] > base["created"]


def test_unchanged_traffic_is_not_flagged(setup):
    report = drift(baseline(setup["run"].path), read_capture(setup["captures"]["same"]))
    assert report.captured == 45 and not report.drifted, report.summary
    assert report.headline.startswith("no drift"), report.headline
    assert all(f.level in ("ok", "minor") for f in report.findings)


def test_darkened_and_blurred_traffic_is_flagged_by_name(setup, tmp_path):
    base = baseline(setup["run"].path)
    captured = read_capture(setup["captures"]["shifted"])
    report = drift(base, captured)
    assert report.drifted
    brightness, sharpness = report.finding("brightness"), report.finding("sharpness")
    assert brightness.level == "drift" and brightness.direction == "darker" and brightness.live < brightness.baseline
    assert sharpness.level == "drift" and sharpness.direction == "blurrier" and sharpness.live < sharpness.baseline
    assert report.finding("megapixels").level == "ok"  # same size as sent
    assert "production images are darker" in report.headline and "blurrier" in report.headline
    assert any("--augment phone" in action for action in report.actions)
    assert any("--labels" in action for action in report.actions)

    labels = read_labels(_labels_csv(tmp_path / "labels.csv", setup["truth"], "shifted-"), base["classes"])
    report = drift(base, captured, labels)
    correct = sum(r["predicted_label"] == setup["truth"][r["request_id"]] for r in captured)
    accuracy = report.finding("accuracy")
    assert report.labelled == accuracy.detail["labelled"] == len(captured)
    assert accuracy.live == pytest.approx(correct / len(captured))
    assert accuracy.baseline == pytest.approx(base["validation_accuracy"])
    assert accuracy.statistic == pytest.approx(base["validation_accuracy"] - correct / len(captured), abs=1e-4)
    assert accuracy.level == "drift"
    assert f"accuracy fell from {accuracy.baseline:.2f} to {accuracy.live:.2f} on {len(captured)} labelled requests" \
        in report.headline
    json.dumps(report.to_dict())


def test_too_few_images_are_not_called_drift(setup):
    captured = read_capture(setup["captures"]["shifted"])[:MIN_SAMPLE - 1]
    report = drift(baseline(setup["run"].path), captured)
    assert not report.drifted and report.headline.startswith("too few captured images")


def test_capture_reader_skips_a_torn_last_line(setup, tmp_path):
    lines = next(setup["captures"]["same"].glob("capture-*.jsonl")).read_text().splitlines(keepends=True)
    (tmp_path / "capture-a.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    assert [r["request_id"] for r in read_capture(tmp_path)] == ["same-0", "same-1", "same-2"]
    (tmp_path / "capture-b.jsonl").write_text("not json\n" + lines[0])
    with pytest.raises(UsageError, match="capture-b.jsonl:1 is not a capture record"):
        read_capture(tmp_path)


def test_labels_files(tmp_path):
    classes = ["circle", "square", "stripes"]
    (tmp_path / "a.csv").write_text("request_id,index,label\nr1,0,circle\nr1,1,square\nr2,,stripes\n")
    assert read_labels(tmp_path / "a.csv", classes) == {("r1", 0): "circle", ("r1", 1): "square", "r2": "stripes"}
    rows = [{"request_id": "r1", "label": "circle"}, {"request_id": "r2", "label": "square"}]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert read_labels(tmp_path / "b.jsonl", classes) == {"r1": "circle", "r2": "square"}
    (tmp_path / "c.csv").write_text("request_id,label\nr1,cirle\nr2,hexagon\n")
    with pytest.raises(UsageError, match="unknown classes 'cirle', 'hexagon'.*did you mean 'circle'"):
        read_labels(tmp_path / "c.csv", classes)
    (tmp_path / "d.csv").write_text("id,class\nr1,circle\n")
    with pytest.raises(UsageError, match="needs request_id and label"):
        read_labels(tmp_path / "d.csv", classes)


def test_monitor_cli_prints_the_report_and_writes_json(setup, tmp_path):
    run, capture = setup["run"], setup["captures"]["shifted"]
    labels = _labels_csv(tmp_path / "labels.csv", setup["truth"], "shifted-")
    result = run_cli("monitor", str(run.path), str(capture), "--labels", str(labels))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "brightness" in out and "darker" in out and "sharpness" in out and "blurrier" in out
    assert "accuracy fell from" in out and "to do: retrain with --augment phone" in out
    path = capture / "monitor.json"
    assert out.strip().splitlines()[-1] == str(path)
    saved = json.loads(path.read_text())
    assert saved["drift"] is True and saved["labelled"] == 45 and "darker" in saved["headline"]
    assert {f["name"] for f in saved["findings"] if f["level"] == "drift"} >= {"brightness", "sharpness", "accuracy"}

    result = run_cli("monitor", str(run.path), str(setup["captures"]["same"]), "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert "no drift" in result.stdout and json.loads((tmp_path / "r.json").read_text())["drift"] is False


@pytest.mark.parametrize("args, message", [
    (["monitor", "{run}", "{root}/no-such-capture"], "capture folder '{root}/no-such-capture' does not exist"),
    (["monitor", "{run}", "{capture}", "--labels", "{bad}"], "unknown class 'hexagon'"),
])
def test_monitor_cli_errors_are_one_line_and_exit_2(setup, tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("request_id,label\nshifted-0,hexagon\n")
    values = {"run": setup["run"].path, "root": setup["root"], "capture": setup["captures"]["shifted"],
              "bad": tmp_path / "bad.csv"}
    result = run_cli(*[a.format(**values) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message.format(**values) in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_inputs_are_usage_errors(setup, tmp_path):
    with pytest.raises(UsageError, match="no captured requests") as caught:
        read_capture(tmp_path)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="does not exist"):
        baseline(tmp_path / "no-such-run")
    labels = {"nobody": "circle"}
    report = drift(baseline(setup["run"].path), read_capture(setup["captures"]["same"]), labels)
    assert "none of the 1 labels matches a captured request id" in report.headline


def test_missing_validation_images_are_one_line(setup, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(setup["run"].path, copy)
    split = read_json(copy / "split.json")
    split["val"] = [[str(tmp_path / "gone" / f"{n}.png"), label, digest] for n, (_, label, digest)
                    in enumerate(split["val"])]
    (copy / "split.json").write_text(json.dumps(split))
    shutil.rmtree(copy / "monitor", ignore_errors=True)
    with pytest.raises(UsageError, match="validation images of .* are gone"):
        baseline(copy, predictor=setup["runner"], log=lambda message: None)

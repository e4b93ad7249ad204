"""ONNX export of a real run: one graph from uint8 images to probabilities, equal to PyTorch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import ocula
from ocula.inference import Predictor
from ocula.storage import read_json
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return ocula.train(write_dataset(root / "data", per_class=8), model="small_cnn", pretrained="none", mode="full",
                       epochs=2, out=str(root / "run"), runs_root=str(root), quiet=True)


def test_export_cli_writes_a_checked_onnx_model_with_its_preprocessing(run):
    result = run_cli("export", str(run.path), "--format", "onnx")
    assert result.returncode == 0, result.stderr
    onnx_path = run.path / "model" / "model.onnx"
    assert result.stdout.strip().splitlines()[-1] == str(onnx_path)
    record = read_json(run.path / "model" / "export.json")["onnx"]
    assert record["max_abs_diff"] <= 1e-4 and "validation images" in record["checked_on"]
    # A runtime needs only the resize and crop: uint8 pixels in, probabilities out, any batch size.
    predictor = Predictor.from_run(run.path, backend="torch")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = predictor.card.input_size
    for n in (1, 5):
        pixels = np.random.default_rng(n).integers(0, 256, (n, 3, size, size), dtype=np.uint8)
        probs = session.run(["probabilities"], {"images": pixels})[0]
        expected = predictor.probabilities(pixels)
        assert probs.shape == (n, len(predictor.card.labels))
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["export", "{run}", "--format", "tflite"], "unknown export format 'tflite'"),
    (["export", "{root}/nope"], "does not exist"),
])
def test_export_bad_arguments_are_one_line_and_exit_2(run, args, message):
    result = run_cli(*[a.format(run=run.path, root=run.path.parent) for a in args])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_int8_reports_its_accuracy_change_and_speed_and_serves(run):
    result = run_cli("export", str(run.path), "--int8", "--max-drop", "1")
    assert result.returncode == 0, result.stderr
    record = read_json(run.path / "model" / "export.json")
    int8 = record["int8"]
    assert record["onnx"]["max_abs_diff"] <= 1e-4  # the fp32 check is kept beside it
    assert int8["accepted"] and int8["validation_images"] > 0 and int8["speedup"] > 0
    assert int8["drop"] == pytest.approx(int8["accuracy_fp32"] - int8["accuracy_int8"], abs=1e-4)
    assert f"int8: validation accuracy {int8['accuracy_fp32']:.4f} -> {int8['accuracy_int8']:.4f}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == str(run.path / "model" / "model.int8.onnx")

    predictor = Predictor.from_run(run.path, int8=True)
    size = predictor.card.input_size
    probs = predictor.probabilities(np.random.default_rng(0).integers(0, 256, (3, 3, size, size), dtype=np.uint8))
    assert probs.shape == (3, len(predictor.labels)) and np.allclose(probs.sum(1), 1, atol=1e-3)


def test_int8_is_refused_above_the_accuracy_limit(run):
    # max-drop -1 demands int8 beat fp32 by 100 points: always refused, and nothing is written.
    (run.path / "model" / "model.int8.onnx").unlink(missing_ok=True)
    result = run_cli("export", str(run.path), "--int8", "--max-drop", "-1")
    assert result.returncode == 1 and "int8 refused" in result.stderr and "Traceback" not in result.stderr
    assert not (run.path / "model" / "model.int8.onnx").exists()
    assert read_json(run.path / "model" / "export.json")["int8"]["accepted"] is False


def test_a_new_temperature_makes_the_export_stale_and_it_is_applied_everywhere(run, tmp_path):
    import json
    import shutil

    from ocula.models import ModelCard

    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    (copy / "model" / "model.int8.onnx").unlink(missing_ok=True)
    assert run_cli("export", str(copy)).returncode == 0
    # An export written before calibration existed has no temperature in export.json: still fresh at T = 1.
    record = read_json(copy / "model" / "export.json")
    record["onnx"].pop("temperature")
    (copy / "model" / "export.json").write_text(json.dumps(record))
    said: list[str] = []
    assert Predictor.from_run(copy, log=said.append).backend == "onnxruntime" and said == []

    card = ModelCard.from_json(copy / "model" / "card.json")
    card.temperature = 0.5
    card.to_json(copy / "model" / "card.json")
    onnx = Predictor.from_run(copy, log=said.append)  # the export holds T = 1: made again
    assert any("exporting" in line for line in said)
    assert read_json(copy / "model" / "export.json")["onnx"]["temperature"] == 0.5
    eager = Predictor.from_run(copy, backend="torch")
    pixels = np.random.default_rng(3).integers(0, 256, (4, 3, card.input_size, card.input_size), dtype=np.uint8)
    np.testing.assert_allclose(onnx.probabilities(pixels), eager.probabilities(pixels), atol=1e-5)
    assert eager.engine.temperature == 0.5
    plain = Predictor.from_run(run.path, backend="torch").probabilities(pixels)
    assert (eager.probabilities(pixels).max(1) >= plain.max(1) - 1e-6).all()  # T < 1 sharpens

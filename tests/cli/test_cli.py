"""The ``ocula`` command as a user runs it: exit codes, one-line errors, the run directory last."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli

FAST = ["--image-size", "64", "--batch-size", "16"]


class Payload:
    """A Python object in a checkpoint: what a weights-only loader must refuse."""


def assert_one_line_error(result, pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert pattern in lines[0].lower(), lines[0]


def test_help_explains_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "data", "predict", "runs", "demo"):
        assert command in result.stdout
    train_help = run_cli("train", "--help").stdout
    assert "--budget" in train_help and "finetune" in train_help


def test_nonexistent_path(tmp_path):
    assert_one_line_error(run_cli("train", str(tmp_path / "nope")), "does not exist")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("train", str(tmp_path / "empty")), "no images")


def test_single_class(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "one", classes=("only",), per_class=5)
    assert_one_line_error(run_cli("train", str(data), "--runs-root", str(tmp_path / "runs")), "two classes")


def test_unknown_model_name_suggests(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=3)
    result = run_cli("train", str(data), "--model", "resnet81", "--runs-root", str(tmp_path / "runs"))
    assert_one_line_error(result, "unknown model")
    assert "resnet18" in result.stderr


def test_unknown_augmentation_name(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=3)
    result = run_cli("train", str(data), "--augment", "fone", "--runs-root", str(tmp_path / "runs"))
    assert_one_line_error(result, "unknown augmentation")
    assert "phone" in result.stderr


def test_unknown_mode(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=3)
    assert_one_line_error(run_cli("train", str(data), "--mode", "last-x", "--runs-root", str(tmp_path)), "mode")


def test_missing_run_directory(tmp_path):
    assert_one_line_error(run_cli("predict", str(tmp_path / "nope"), "x.jpg"), "does not exist")


@pytest.mark.slow
def test_train_predict_and_runs_list(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=10)
    runs = str(tmp_path / "runs")
    result = run_cli("train", str(data), "--mode", "head", "--epochs", "3", *FAST, "--runs-root", runs)
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])  # the last line is the run directory
    assert (run_dir / "model" / "weights.pt").exists() and run_dir.parent == Path(runs)
    assert "epoch=3 train:loss=" in result.stdout
    image = next((data / "square").iterdir())
    predicted = run_cli("predict", str(run_dir), str(image), "--top-k", "2")
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.strip().splitlines()) == 3  # the image, then two labels
    listed = run_cli("runs", "list", "--root", runs)
    assert run_dir.name in listed.stdout and "completed" in listed.stdout
    shown = run_cli("runs", "show", run_dir.name[:15], "--root", runs)
    assert shown.returncode == 0 and "validation:accuracy" in shown.stdout


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues(tmp_path, make_dataset):
    data = make_dataset(tmp_path / "d", per_class=40, size=32)
    out = tmp_path / "run"
    exe = Path(sys.executable).with_name("ocula")
    args = [str(exe), "train", str(data), "--model", "small_cnn", "--mode", "full", "--epochs", "40",
            "--patience", "100", "--out", str(out), "--runs-root", str(tmp_path / "runs")]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and (out / "log.txt").read_text().count("epoch=") >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    done = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= done < 40  # the epoch whose save was cut short is redone on resume

    resumed = run_cli("train", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 41))
    assert metrics["status"] == "completed"


@pytest.mark.slow
def test_damaged_or_foreign_weights_are_one_line_and_never_suggest_unsafe_loading(tmp_path, make_dataset):
    """A zero-byte weights.pt (predict, serve) or last.pt (train --resume), and a pickle holding a
    Python object: one line each, and none tells the user to pass weights_only=False."""
    import shutil

    from tests.serve.test_server import free_port

    data = make_dataset(tmp_path / "d", per_class=6, size=32)
    run = tmp_path / "run"
    trained = run_cli("train", str(data), "--model", "small_cnn", "--pretrained", "none", "--mode", "full",
                      "--epochs", "1", "--out", str(run), "--runs-root", str(tmp_path / "runs"))
    assert trained.returncode == 0, trained.stderr
    image = str(next((data / "square").iterdir()))

    empty = tmp_path / "empty-weights"
    shutil.copytree(run, empty)
    (empty / "model" / "weights.pt").write_bytes(b"")
    for name in ("model.onnx", "export.json"):
        (empty / "model" / name).unlink(missing_ok=True)
    assert_one_line_error(run_cli("predict", str(empty), image), "is empty (0 bytes)")
    served = run_cli("serve", str(empty), "--port", str(free_port()), timeout=120)
    assert served.returncode == 2 and "Traceback" not in served.stderr, served.stderr
    assert "is empty (0 bytes)" in served.stderr.strip().splitlines()[-1]  # after the "exporting ..." line

    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert_one_line_error(run_cli("train", "--resume", str(run)), "is empty (0 bytes)")

    torch.save({"model": {"w": torch.zeros(1)}, "epoch": Payload()}, run / "checkpoints" / "last.pt")
    resumed = run_cli("train", "--resume", str(run))
    assert_one_line_error(resumed, "contains the python object")
    shutil.copy(run / "checkpoints" / "last.pt", empty / "model" / "weights.pt")
    predicted = run_cli("predict", str(empty), image)
    assert_one_line_error(predicted, "contains the python object")
    for result in (resumed, predicted):
        assert "weights_only=False" not in result.stderr and "weights_only` set to `False" not in result.stderr

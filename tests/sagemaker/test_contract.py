"""The SageMaker container contract end to end against a temporary root: hyperparameters.json and
channels in, the model in model/, `serve` answering /ping and /invocations; bad hyperparameters
write output/failure and exit non-zero."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli, write_dataset
from tests.serve.test_server import free_port

pytestmark = pytest.mark.slow


def _root(tmp_path: Path, hyperparameters: dict) -> Path:
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    write_dataset(root / "input" / "data" / "train", per_class=10)
    write_dataset(root / "input" / "data" / "validation", per_class=4, seed=1)
    return root


def test_train_then_serve_as_sagemaker_does(tmp_path):
    root = _root(tmp_path, {"num_classes": "3", "epochs": "2", "use_pretrained_model": "1",
                            "augmentation_type": "crop_color", "mini_batch_size": "16", "learning_rate": "0.002",
                            "optimizer": "sgd", "image_shape": "3,224,224", "early_stopping": "true"})
    result = run_cli("sagemaker", "train", "--root", str(root))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "epoch=1 train:loss=" in result.stdout and "validation:accuracy=" in result.stdout  # metric lines
    assert "optimizer=sgd: ocula trains with AdamW" in result.stdout
    assert (root / "model" / "model" / "card.json").exists() and (root / "model" / "model" / "weights.pt").exists()
    assert not (root / "model" / "checkpoints").exists() and (root / "checkpoints" / "run" / "checkpoints").exists()
    assert not (root / "output" / "failure").exists()
    config = (root / "model" / "config.yaml").read_text()
    assert "augment: crop_color" in config and "batch_size: 16" in config

    # a restarted job (managed spot) finds the finished run and does not train again
    again = run_cli("sagemaker", "train", "--root", str(root))
    assert again.returncode == 0 and "already holds the finished run" in again.stdout

    port = free_port()
    exe = Path(sys.executable).with_name("ocula")
    server = subprocess.Popen([str(exe), "sagemaker", "serve", "--root", str(root), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import http.client

        deadline, status = time.monotonic() + 120, None
        while time.monotonic() < deadline and status != 200:
            assert server.poll() is None, server.stderr.read()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/ping")
                status = connection.getresponse().status
            except OSError:
                time.sleep(0.3)
        assert status == 200
        buffer = io.BytesIO()
        Image.open(next((root / "input" / "data" / "validation" / "circle").glob("*.png"))).save(buffer, "JPEG")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/invocations", buffer.getvalue(), {"Content-Type": "image/jpeg"})
        response = connection.getresponse()
        probabilities = json.loads(response.read())
        assert response.status == 200 and len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-4
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.parametrize("hyperparameters, message", [
    ({"epochs": "ten"}, "hyperparameter epochs='ten' is not a whole number"),
    ({"epochs": "2", "num_epochs_typo": "3"}, "unknown hyperparameter(s): num_epochs_typo"),
    ({"num_classes": "5"}, "num_classes=5 but the train channel holds 3 classes"),
    ({"image_shape": "3,224"}, "image_shape='3,224'"),
])
def test_a_bad_hyperparameter_writes_failure_and_exits_non_zero(tmp_path, hyperparameters, message):
    root = _root(tmp_path, hyperparameters)
    result = run_cli("sagemaker", "train", "--root", str(root))
    assert result.returncode != 0
    failure = (root / "output" / "failure").read_text()
    assert message in failure and len(failure) <= 1024
    assert "Traceback" not in result.stderr and not (root / "model" / "model").exists()


def test_a_spot_restart_resumes_from_checkpoints(tmp_path):
    import ocula

    root = _root(tmp_path, {"epochs": "2", "use_pretrained_model": "0"})

    class Reclaimed(Exception):
        pass

    def reclaim(record):
        raise Reclaimed  # the instance goes away after the first epoch's checkpoint

    with pytest.raises(Reclaimed):
        ocula.train(str(root / "input" / "data" / "train"), val=str(root / "input" / "data" / "validation"),
                    model="small_cnn", pretrained="none", mode="full", epochs=2, out=str(root / "checkpoints" / "run"),
                    runs_root=str(root / "checkpoints"), quiet=True, on_epoch=reclaim)
    result = run_cli("sagemaker", "train", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert "resuming the interrupted run" in result.stdout and "epoch=2 " in result.stdout
    assert "epoch=1 " not in result.stdout.split("resuming")[1]  # epoch 1 was not trained again
    assert (root / "model" / "metrics.json").exists()


def test_lst_channels_as_the_built_in_algorithm_reads_them(tmp_path):
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"epochs": "1", "num_classes": "3", "num_training_samples": "24", "use_pretrained_model": "1"}))
    data = root / "input" / "data"
    for channel, per_class, seed in (("train", 8, 0), ("validation", 4, 1)):
        write_dataset(data / channel, per_class=per_class, seed=seed)
        images = sorted((data / channel).rglob("*.png"))
        classes = sorted({p.parent.name for p in images})
        (data / f"{channel}_lst").mkdir()
        (data / f"{channel}_lst" / f"{channel}.lst").write_text("".join(
            f"{i}\t{classes.index(p.parent.name)}\t{p.relative_to(data / channel)}\n" for i, p in enumerate(images)))
    result = run_cli("sagemaker", "train", "--root", str(root))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "24 train / 12 validation images" in result.stdout
    card = json.loads((root / "model" / "model" / "card.json").read_text())
    assert card["labels"] == ["0", "1", "2"]  # .lst labels are class ids

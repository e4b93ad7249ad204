"""The SageMaker container contract: the same ocula as a SageMaker training job and endpoint.

SageMaker runs a training image as ``<image> train`` and an inference image as ``<image> serve``
(``ocula sagemaker train`` / ``ocula sagemaker serve``; the Dockerfile's entry point). Under the
root (``/opt/ml``; ``--root`` or ``OCULA_SAGEMAKER_ROOT`` elsewhere, so tests need no container):

- ``input/config/hyperparameters.json``: the built-in image-classification algorithm's
  hyperparameters, every value a string, mapped to ``ocula train`` options by ``HYPERPARAMETERS``
  (an unknown name or a value of the wrong kind stops the job before any work);
- ``input/data/<channel>``: ``train`` and ``validation`` (class folders, or images listed by
  ``train_lst``/``validation_lst``), read as ``ocula train`` reads any layout; a ``model`` channel
  holding an earlier ``model.tar.gz``'s content is incremental training (``--pretrained``);
- ``checkpoints/run``: the run directory itself, so a managed-spot restart resumes it
  (``--resume``) instead of starting again;
- ``model/``: the finished run without its checkpoints (card, weights, ONNX export, metrics,
  report), which ``serve`` loads;
- ``output/failure``: on failure, the reason (first 1,024 characters) and a non-zero exit.

The per-epoch ``epoch=3 train:loss=... validation:accuracy=...`` lines ``ocula train`` prints are
what SageMaker's metric definitions parse.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocula.errors import OculaError, UsageError, first_line
from ocula.storage import RunDir

ROOT = "/opt/ml"
ROOT_ENV = "OCULA_SAGEMAKER_ROOT"
FAILURE_CHARS = 1024  # what SageMaker shows of output/failure


def _whole(name: str, text: str) -> int:
    try:
        return int(float(text)) if float(text).is_integer() else _bad(name, text, "a whole number")
    except ValueError:
        return _bad(name, text, "a whole number")


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return _bad(name, text, "a number")


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    return _bad(name, text, "0 or 1 (true or false)")


def _bad(name: str, text: str, what: str) -> Any:
    raise UsageError(f"hyperparameter {name}={text!r} is not {what}")


def _text(name: str, text: str) -> str:
    return text.strip()


def _image_shape(name: str, text: str) -> int:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] != "3" or parts[1] != parts[2]:
        _bad(name, text, '"3,S,S" (3 channels, a square side S)')
    return int(parts[1])


# SageMaker's name -> (parse the string, the ocula option it sets or None when accepted and noted)
_Map = Callable[[str, str], Any]
HYPERPARAMETERS: dict[str, tuple[_Map, str | None]] = {
    "num_classes": (_whole, None),  # checked against the classes found in the data
    "num_training_samples": (_whole, None),  # the data decides; reported when it differs
    "epochs": (_whole, "epochs"),
    "learning_rate": (_number, "lr"),
    "mini_batch_size": (_whole, "batch_size"),
    "weight_decay": (_number, "weight_decay"),
    "top_k": (_whole, "top_k"),
    "image_shape": (_image_shape, "image_size"),
    "multi_label": (_flag, "multi_label"),
    "use_pretrained_model": (_flag, None),  # 1: transfer learning (finetune), 0: from scratch (full)
    "augmentation_type": (_text, "augment"),
    "use_weighted_loss": (_flag, None),  # 1: class-weighted loss, 0: none
    "early_stopping": (_flag, None),  # false: patience longer than any run
    "early_stopping_min_epochs": (_whole, "min_epochs"),
    "early_stopping_patience": (_whole, "patience"),
    "early_stopping_tolerance": (_number, None),
    "label_smoothing": (_number, "label_smoothing"),
    "dropout_rate": (_number, "drop_rate"),
    # accepted, with what ocula does instead said in the log
    "num_layers": (_whole, None), "optimizer": (_text, None), "momentum": (_number, None),
    "lr_scheduler_step": (_text, None), "lr_scheduler_factor": (_number, None),
    "checkpoint_frequency": (_whole, None), "precision_dtype": (_text, None),
    "resize": (_whole, None), "kv_store": (_text, None),
    # ocula's own, for teams that want them
    "mode": (_text, "mode"), "model": (_text, "model"),
    "budget": (_text, "budget"), "seed": (_whole, "seed"),
    "calibrate": (_text, "calibrate"), "consistency": (_number, "consistency"),
}
_NOTES = {
    "num_layers": "ocula trains its own backbone (--model, default tf_efficientnet_lite0), not ResNet-{}",
    "optimizer": "ocula trains with AdamW and discriminative rates, not {}",
    "momentum": "momentum {} does not apply to AdamW",
    "lr_scheduler_step": "ocula uses a one-cycle schedule, not steps at {}",
    "lr_scheduler_factor": "ocula uses a one-cycle schedule (factor {} unused)",
    "checkpoint_frequency": "ocula checkpoints after every epoch (frequency {} unused)",
    "precision_dtype": "CPU training runs in float32 ({} unused)",
    "resize": "ocula resizes the shorter side to image_size / 0.875 (resize {} unused)",
    "kv_store": "distributed key-value store {} unused: ocula trains in one process here",
    "early_stopping_tolerance": "early stopping compares accuracies without tolerance ({} unused)",
}


@dataclass(frozen=True)
class Paths:
    """The container's directories under ``root``."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Paths:
        return cls(Path(root or os.environ.get(ROOT_ENV) or ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def data(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def run(self) -> Path:
        return self.root / "checkpoints" / "run"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


def options_from(hyperparameters: dict[str, Any], say: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``ocula train`` options, the checks the data must pass) from SageMaker's hyperparameters."""
    unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
    if unknown:
        raise UsageError(f"unknown hyperparameter(s): {', '.join(unknown)}",
                         hint="accepted: " + ", ".join(sorted(HYPERPARAMETERS)))
    options: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for name, raw in hyperparameters.items():
        parse, option = HYPERPARAMETERS[name]
        value = parse(name, str(raw))
        if option is not None:
            options[option] = value
        elif name in ("num_classes", "num_training_samples"):
            checks[name] = value
        elif name == "use_pretrained_model":
            options.setdefault("mode", "finetune" if value else "full")
            options["pretrained"] = "default" if value else "none"
        elif name == "use_weighted_loss":
            options["imbalance"] = "weights" if value else "none"
        elif name == "early_stopping" and not value:
            checks["no_early_stopping"] = True
        if name in _NOTES:
            say(f"hyperparameter {name}={raw}: {_NOTES[name].format(raw)}")
    if checks.pop("no_early_stopping", False):
        options["patience"] = 10**6
    return options, checks


def train(root: str | os.PathLike[str] | None = None, *, say: Callable[[str], None] = print) -> int:
    """The ``train`` entry point: 0 when the model is in ``model/``, else 1 with ``output/failure``."""
    paths = Paths.at(root)
    try:
        _train(paths, say)
    except BaseException as error:  # noqa: BLE001 - every failure must reach output/failure
        if isinstance(error, KeyboardInterrupt):
            reason = "training was interrupted (SIGINT); the last finished epoch is in checkpoints/"
        elif isinstance(error, OculaError):
            reason = str(error)
        else:
            reason = f"{type(error).__name__}: {first_line(error)}"
            traceback.print_exc()
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(reason[:FAILURE_CHARS], encoding="utf-8")
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return 0


def _train(paths: Paths, say: Callable[[str], None]) -> None:
    from ocula.api import train as run_training

    if not paths.hyperparameters.exists():
        hyperparameters: dict[str, Any] = {}
    else:
        try:
            hyperparameters = json.loads(paths.hyperparameters.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(f"{paths.hyperparameters} is not valid JSON: {first_line(error)}") from None
        if not isinstance(hyperparameters, dict):
            raise UsageError(f"{paths.hyperparameters} must hold a JSON object of name: value")
    options, checks = options_from(hyperparameters, say)
    data, val = _data(paths)
    if val is not None:
        options["val"] = str(val)
    if (paths.data / "model").is_dir():  # incremental training from an earlier job's model artifact
        options.setdefault("pretrained", str(paths.data / "model"))
    previous = RunDir(paths.run)
    if previous.checkpoint.exists() and not previous.metrics.exists():
        say(f"resuming the interrupted run in {paths.run} (managed spot training)")
        run = run_training(resume=str(paths.run))
    elif previous.metrics.exists():
        from ocula.train.run import Run

        say(f"{paths.run} already holds the finished run; copying it to {paths.model}")
        run = Run(paths.run)
    else:
        if paths.run.exists():
            shutil.rmtree(paths.run)  # a run that never reached its first checkpoint: start again
        _check_data(data, options, checks, say)
        run = run_training(str(data), out=str(paths.run), runs_root=str(paths.run.parent), **options)
    _publish(run.path, paths.model)
    say(f"model written to {paths.model}")


def _data(paths: Paths) -> tuple[Path, Path | None]:
    """(what ``ocula train`` reads, the validation channel or None): the channels folder when it
    holds ``train_lst`` (SageMaker's .lst layout, which the reader finds by the channel names),
    else the ``train`` channel, with ``validation`` as ``--val`` when given."""
    channels = {p.name for p in paths.data.iterdir() if p.is_dir()} if paths.data.is_dir() else set()
    if "train_lst" in channels:
        return paths.data, None
    if "train" not in channels:
        raise UsageError(f"no train channel in {paths.data}", hint="give the training job a 'train' channel")
    return paths.data / "train", paths.data / "validation" if "validation" in channels else None


def _check_data(data: Path, options: dict[str, Any], checks: dict[str, Any], say: Callable[[str], None]) -> None:
    from ocula.data import load_source

    source = load_source(str(data), label_level="fine")
    classes = len(source.classes)
    if "num_classes" in checks and checks["num_classes"] != classes:
        raise UsageError(f"hyperparameter num_classes={checks['num_classes']} but the train channel holds "
                         f"{classes} classes", hint="fix num_classes or the data")
    if "num_training_samples" in checks and checks["num_training_samples"] != len(source.train):
        say(f"hyperparameter num_training_samples={checks['num_training_samples']}: the train channel lists "
            f"{len(source.train)} images; ocula uses what it finds")


def _publish(run: Path, model: Path) -> None:
    """Copy the finished run, without its checkpoints, into ``model/`` (SageMaker tars it to S3)."""
    model.mkdir(parents=True, exist_ok=True)
    for item in run.iterdir():
        if item.name in ("checkpoints", ".lease"):
            continue
        target = model / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)


def serve(root: str | os.PathLike[str] | None = None, *, host: str = "0.0.0.0", port: int = 8080,
          workers: int = 1, say: Callable[[str], None] = print) -> None:
    """The ``serve`` entry point: ``model/`` on ``port`` (SageMaker sends /ping and /invocations to 8080)."""
    from ocula.serve.server import Options, serve as run_server

    paths = Paths.at(root)
    if not (paths.model / "model" / "card.json").exists():
        raise UsageError(f"no ocula model in {paths.model}", hint="deploy the model.tar.gz of an ocula training job")
    run_server(Options(str(paths.model)), host=host, port=port, workers=workers, log=say)

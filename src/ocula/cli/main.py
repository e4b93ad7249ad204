"""The ``ocula`` command: parse arguments, call the Python API, print with rich.

Every OculaError becomes one line on stderr and its exit code (2 for bad input); nothing
here does work the API does not expose.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from ocula.cli import (TTA_HELP, automl_cmd, batch_cmd, data_cmd, evaluate_cmd, monitor_cmd, runs_cmd, sagemaker_cmd,
                       serve_cmd, tune_cmd)
from ocula.errors import DataError, OculaError

app = typer.Typer(
    name="ocula",
    help="Image classification by transfer learning, offline: audit data, train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(sagemaker_cmd.app, name="sagemaker")
app.command()(evaluate_cmd.evaluate)
app.command()(evaluate_cmd.compare)
# serving commands (cli/serve_cmd.py, cli/batch_cmd.py, cli/monitor_cmd.py)
app.command()(monitor_cmd.monitor)
app.command()(batch_cmd.batch)
app.command()(serve_cmd.serve)
app.command()(tune_cmd.tune)
app.command()(automl_cmd.automl)
err = Console(stderr=True, highlight=False)

Opt = typer.Option


@app.command()
def train(
    data: Annotated[Optional[str], typer.Argument(help="Images: class folders, train/val folders, a .lst, CSV/JSONL manifest, or a manifest folder with classes.csv.")] = None,
    val: Annotated[Optional[str], Opt(help="Validation data (any layout); default: a stratified split of DATA.")] = None,
    model: Annotated[Optional[str], Opt(help="Architecture by timm name, or small_cnn. Default tf_efficientnet_lite0.")] = None,
    pretrained: Annotated[Optional[str], Opt(help="default (offline ImageNet weights), none, hub (online), a .pt state_dict, or a previous run directory.")] = None,
    mode: Annotated[Optional[str], Opt(help="head (frozen backbone), finetune (head, then all layers), last-N, or full. Default finetune.")] = None,
    augment: Annotated[Optional[str], Opt(help="none, crop, crop_color, crop_color_transform, randaugment, trivialaugment, phone, or phone-without:FAMILY[,FAMILY] (geometry, blur, exposure, noise, white_balance, contrast, jpeg). Default crop.")] = None,
    epochs: Annotated[Optional[int], Opt(help="Epochs (for finetune: epochs through the backbone after the head phase).")] = None,
    head_epochs: Annotated[Optional[int], Opt(help="finetune: epochs of the head on cached features before unfreezing. Default 5.")] = None,
    budget: Annotated[Optional[str], Opt(help="Wall-time budget for the whole run, e.g. 10m; epochs are chosen to fit.")] = None,
    image_size: Annotated[Optional[int], Opt(help="Input size in pixels; default the model's (224, or 32 for small_cnn).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Images per step. Default 32.")] = None,
    lr: Annotated[Optional[float], Opt(help="Peak learning rate; default a proven rate per mode.")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed for splits, augmentation and initialisation. Default 0.")] = None,
    out: Annotated[Optional[str], Opt(help="Write the run directory exactly here (default runs/<run-id>).")] = None,
    resume: Annotated[Optional[str], Opt(help="Continue an interrupted run directory from its last checkpoint.")] = None,
    label_level: Annotated[Optional[str], Opt(help="fine or coarse labels for manifests with classes.csv.")] = None,
    multi_label: Annotated[Optional[bool], Opt("--multi-label", help="Train independent per-label probabilities "
                           "(sigmoid) even if every image has one label. Multi-label data (a .lst with one 0/1 column "
                           "per class, CSV cells like milk|bread, Ground Truth's multi-label manifests) always "
                           "trains this way.")] = None,
    val_fraction: Annotated[Optional[float], Opt(help="Validation share when no validation set is given. Default 0.2.")] = None,
    mix: Annotated[Optional[str], Opt(help="none, mixup or cutmix (backbone modes).")] = None,
    random_erasing: Annotated[Optional[float], Opt(help="Probability of random erasing per image (backbone modes).")] = None,
    consistency: Annotated[Optional[float], Opt(help="With --augment phone: weight of AugMix's consistency loss (the model must answer the same for an image and two phone photos of it). Default 12 with --augment phone (as in AugMix), 0 otherwise; 0 switches it off. Each backbone step then runs three views of each image: about 2.3x the time.")] = None,
    label_smoothing: Annotated[Optional[float], Opt(help="Label smoothing. Default 0.1.")] = None,
    weight_decay: Annotated[Optional[float], Opt(help="AdamW weight decay. Default 0.01.")] = None,
    patience: Annotated[Optional[int], Opt(help="Early stopping: epochs without a better validation accuracy. Default 5.")] = None,
    imbalance: Annotated[Optional[str], Opt(help="auto, weights, sampler or none. auto weights the loss when classes are imbalanced.")] = None,
    top_k: Annotated[Optional[int], Opt(help="k of the top-k accuracy. Default 5.")] = None,
    calibrate: Annotated[Optional[str], Opt(help="phone (default): fit a temperature, so that probabilities match accuracy, on the validation images and copies of them under mild phone-photo corruptions (holds on photos a little unlike validation); temperature: on the validation images alone; none: leave them as trained.")] = None,
    runs_root: Annotated[Optional[str], Opt(help="Folder of runs and of the run index. Default runs.")] = None,
    device: Annotated[Optional[str], Opt(help="auto (default: CUDA, then Apple MPS, then the CPU), cpu, cuda or mps. "
                                        "CUDA trains in mixed precision (bfloat16 where supported).")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="Print only the run directory.")] = False,
) -> None:
    """Train a classifier by transfer learning; the last line printed is the run directory."""
    options = {k: v for k, v in locals().items() if v is not None and k not in ("data", "resume", "quiet")}
    from ocula.api import train as run_training

    run = run_training(data, resume=resume, quiet=quiet, **options)
    print(run.path)


@app.command()
def predict(
    run: Annotated[str, typer.Argument(help="A run directory.")],
    images: Annotated[list[str], typer.Argument(help="Image files.")],
    top_k: Annotated[int, Opt(help="How many labels per image.")] = 5,
    min_confidence: Annotated[Optional[float], Opt(
        help="Reject (answer no label for) an image whose top probability is below this, or that is unlike "
             "every training photo; `ocula evaluate` names the value that keeps a target accuracy.")] = None,
    tta: Annotated[bool, Opt("--tta", help=TTA_HELP)] = False,
    explain: Annotated[bool, Opt("--explain", help="Also write where the model looked: a Grad-CAM heatmap of the "
                                 "top label over the photo, one PNG per image in --explain-dir (needs the run's "
                                 "PyTorch weights).")] = False,
    explain_dir: Annotated[Path, Opt(help="Folder for the --explain PNGs.")] = Path("explanations"),
) -> None:
    """Print the top-k labels with probabilities for each image; an unusable file is listed and skipped."""
    from ocula.api import predict as run_predict
    from ocula.inference import check_min_confidence

    explainer = None
    if explain:
        from ocula.inference.explain import Explainer

        explainer = Explainer.from_run(run)  # a run without weights fails here, before any work
    predictions = run_predict(run, images, top_k=top_k, min_confidence=check_min_confidence(min_confidence), tta=tta)
    written = _write_explanations(explainer, images, explain_dir) if explainer else {}
    for prediction in predictions:
        print(prediction.source)
        if prediction.source in written:
            print(f"  heatmap of {written[prediction.source]}")
        if prediction.error is not None:
            print(f"  skipped: {prediction.error.reason} ({prediction.error.detail})")
        if prediction.rejected:
            print(f"  rejected: {prediction.rejection} (no label; ask for another photo)")
        if prediction.chosen is not None and prediction.error is None:
            print(f"  labels: {', '.join(prediction.chosen) or '(none above its threshold)'}")
        for label, prob in prediction.ranked:
            print(f"  {prob:7.4f}  {label}")
    bad = [p for p in predictions if p.error is not None]
    if bad:
        err.print(f"skipped {len(bad)} of {len(predictions)} images: "
                  + ", ".join(f"{p.source} ({p.error.reason})" for p in bad), highlight=False, soft_wrap=True)
        if len(bad) == len(predictions):
            raise DataError("none of the images could be read", hint="run `ocula data check` on them")


def _write_explanations(explainer: Any, images: list[str], folder: Path) -> dict[str, str]:
    """One overlay PNG per usable image (``<n>-<stem>.png``: two files may share a name)."""
    from ocula.inference.explain import png

    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for n, found in enumerate(explainer.explain_files(images), start=1):
        if isinstance(found, list):  # one heatmap, or one per predicted label of a multi-label model
            lines = []
            for one in found:
                suffix = f"-{one.label}" if len(found) > 1 else ""
                path = folder / f"{n:03d}-{Path(one.source).stem}{suffix}.png"
                path.write_bytes(png(one.overlay))
                lines.append(f"{one.label} ({one.probability:.2f}): {path}")
            written[images[n - 1]] = "\n  heatmap of ".join(lines)
    return written


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="A run directory written by `ocula train`.")],
    format: Annotated[str, Opt("--format", help="onnx: one graph from uint8 images to probabilities.")] = "onnx",
    int8: Annotated[bool, Opt("--int8", help="Also quantise to int8 (calibrated on training images), kept only if validation accuracy holds.")] = False,
    max_drop: Annotated[float, Opt(help="--int8: largest validation accuracy drop accepted, as a fraction.")] = 0.01,
) -> None:
    """Export the run's model with its preprocessing, checked against PyTorch; the last line is the file."""
    from ocula.inference.export import export as run_export

    err.print(f"exporting {run} to {format} and checking it against PyTorch ...", highlight=False)
    result = run_export(run, format=format)
    print(f"max abs difference from PyTorch: {result.max_abs_diff:.2e} (probability, on {result.checked_on})")
    if not int8:
        print(result.path)
        return
    from ocula.inference.quantize import quantize

    q = quantize(run, result.path, max_drop=max_drop, log=lambda m: err.print(m, highlight=False, soft_wrap=True))
    print(f"int8: validation accuracy {q.accuracy_fp32:.4f} -> {q.accuracy_int8:.4f} ({-q.drop * 100:+.1f} points "
          f"on {q.images} images), {q.speedup:.2f}x the fp32 speed")
    if q.path is None:
        raise OculaError(f"int8 refused: it loses {q.drop * 100:.1f} points, above the {max_drop * 100:g}-point limit",
                         hint=f"serve the fp32 model ({result.path}), or raise --max-drop")
    print(q.path)


@app.command()
def demo(
    budget: Annotated[str, Opt(help="Time budget for the demo run.")] = "3m",
    runs_root: Annotated[str, Opt(help="Folder of runs.")] = "runs",
) -> None:
    """Train on scikit-learn's handwritten digits (shipped with scikit-learn) with the defaults."""
    from ocula.cli.demo import run_demo

    run = run_demo(budget=budget, runs_root=runs_root)
    best = run.best
    print(f"validation accuracy: {best.get('validation:accuracy', 0):.4f} (epoch {best.get('epoch')})")
    print(run.path)


def main(argv: list[str] | None = None) -> None:
    """Entry point: typer reports usage errors itself (exit 2); ocula's own errors are one line."""
    try:
        app(args=argv)
    except OculaError as error:
        err.print(f"error: {error}", style="red", markup=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", style="red")
        sys.exit(130)


if __name__ == "__main__":
    main()

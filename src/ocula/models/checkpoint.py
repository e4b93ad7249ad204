"""Loading weights from files we did not write: safely, partially, and saying what happened.

Checkpoints are untrusted input. They are read with ``weights_only=True`` (no arbitrary
objects are ever unpickled) and must turn out to be a mapping of names to tensors.

Loading is "incremental training": every tensor whose name and shape match is copied; the
classifier is re-initialised when the classes differ, and rows of classes that exist in
both the old and new label lists are carried over by name so old classes keep what they
learned.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ocula.errors import ModelError, first_line
from ocula.models.card import ModelCard

WEIGHTS_NAME = "weights.pt"
# Wrappers used by common training scripts (timm, Lightning, plain tutorials).
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")
# Prefixes added by DistributedDataParallel / DataParallel and torch.compile.
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What load_checkpoint copied and what it left at its fresh initialisation."""

    total: int  # tensors in the model's state dict
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # model tensor -> reason
    unused: list[str] = field(default_factory=list)  # checkpoint tensors with no place in the model
    old_classes: int | None = None
    new_classes: int | None = None
    classifier_reset: bool = False
    rows_copied: int = 0

    @property
    def n_loaded(self) -> int:
        return len(self.loaded)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def describe(self) -> str:
        """e.g. 'loaded 294/296 tensors; classifier re-initialised: 10 -> 12 classes, 10 rows copied'."""
        parts = [f"loaded {self.n_loaded}/{self.total} tensors"]
        if self.classifier_reset:
            text = f"classifier re-initialised: {self.old_classes} -> {self.new_classes} classes"
            if self.rows_copied:
                text += f", {self.rows_copied} rows copied"
            parts.append(text)
        other = [name for name, reason in self.skipped.items() if reason != _CLASSIFIER_RESET]
        if other:
            parts.append(f"{len(other)} backbone tensors not matched (e.g. {other[0]}: {self.skipped[other[0]]})")
        return "; ".join(parts)


_CLASSIFIER_RESET = "classifier re-initialised"


def classifier_prefix(model: nn.Module) -> str:
    """State-dict prefix of the classifier module (``classifier``, ``fc``, ``head.fc``...)."""
    head = model.get_classifier()  # type: ignore[operator]
    for name, module in model.named_modules():
        if module is head:
            return name
    raise ModelError(f"cannot find the classifier of {type(model).__name__}")


def load_torch_file(path: str | os.PathLike[str], *, what: str = "file", hint: str | None = None) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, with every failure one ModelError line.

    The only place ocula reads a PyTorch file: weights, resume checkpoints, packaged weights.
    Torch's own message for a refused object suggests switching the weights-only check off, which would run
    the file's code; ours names the object and never suggests that.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist", hint=hint or "check the path")
    if path.stat().st_size == 0:
        raise ModelError(f"{what} {path} is empty (0 bytes)", hint=hint or "the file was not written completely")
    try:
        with warnings.catch_warnings():
            # Old pickle protocols make torch warn; the weights-only unpickler still guards them.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL (\S+)", str(exc))
        if blocked:
            raise ModelError(
                f"{what} {path} refused: it contains the Python object {blocked.group(1)}, not just tensors",
                hint="only tensors and plain containers are loaded, for safety; "
                     "re-save it with torch.save(model.state_dict())",
            ) from None
        raise ModelError(f"{what} {path} is not a PyTorch file (unreadable pickle data)", hint=hint) from None
    except Exception as exc:  # noqa: BLE001 - truncated, zip damaged, not torch at all: one line
        raise ModelError(f"{what} {path} is not a readable PyTorch file ({first_line(exc)})", hint=hint) from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A tensor-name -> tensor mapping from a ``.pt``/``.pth``/``.bin``/``.safetensors`` file.

    Never unpickles Python objects; anything that is not a (possibly wrapped) state dict is a
    ModelError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist", hint="check the path")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _strip_prefixes(load_file(str(path), device="cpu"))
        except Exception as exc:
            raise ModelError(f"checkpoint {path} is not a readable safetensors file ({type(exc).__name__})") from None
    obj = load_torch_file(path, what="checkpoint")
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise ModelError(
            f"checkpoint {path} does not hold a state dict (tensor names -> tensors)",
            hint="save one with torch.save(model.state_dict(), path)",
        )
    return _strip_prefixes(obj)


def _is_state_dict(obj: Mapping[object, object]) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def resolve_checkpoint(source: str | os.PathLike[str]) -> tuple[Path, ModelCard | None]:
    """The weights file and, for a previous ocula run, its card.

    Accepts a state-dict file, a run directory, or a run's ``model/`` directory.
    """
    path = Path(source)
    if not path.exists():
        raise ModelError(f"checkpoint {path} does not exist", hint="pass a .pt/.pth/.bin file or a run directory")
    if path.is_dir():
        for folder in (path / "model", path):
            if (folder / WEIGHTS_NAME).is_file():
                return folder / WEIGHTS_NAME, ModelCard.load(folder)
        raise ModelError(
            f"{path} is a directory without {WEIGHTS_NAME}",
            hint="pass a previous run directory (runs/<run-id>), its model/ folder, or a weights file",
        )
    # A weights.pt given directly still gets its labels if it sits next to its card.
    card = ModelCard.load(path.parent) if (path.parent / "card.json").is_file() else None
    return path, card


def load_checkpoint(
    model: nn.Module, source: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> LoadReport:
    """Load every matching tensor of ``source`` into ``model``; see the module docstring.

    ``labels`` are the new class names (in output order). With a run's card the classifier
    rows of classes present in both label lists are copied by name.
    """
    weights, card = resolve_checkpoint(source)
    return load_state(model, read_state_dict(weights), old_labels=card.labels if card else None, new_labels=labels)


def load_state(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    old_labels: Sequence[str] | None = None,
    new_labels: Sequence[str] | None = None,
) -> LoadReport:
    """Copy matching tensors of ``state`` into ``model``; remap or re-initialise the classifier."""
    own = model.state_dict()
    prefix = classifier_prefix(model) + "."
    head_keys = [k for k in own if k.startswith(prefix)]
    report = LoadReport(total=len(own), unused=[k for k in state if k not in own])
    to_load: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if key in head_keys:
            continue
        if key not in state:
            report.skipped[key] = "not in checkpoint"
        elif state[key].shape != target.shape:
            report.skipped[key] = f"shape {tuple(state[key].shape)} in checkpoint, {tuple(target.shape)} in model"
        else:
            to_load[key] = state[key]
            report.loaded.append(key)
    backbone = len(own) - len(head_keys)
    if backbone and not report.loaded:
        example = next(iter(state), "?")
        raise ModelError(
            f"checkpoint matches none of the model's {backbone} backbone tensors (e.g. it has {example!r})",
            hint="it was probably saved from a different architecture; pass the matching model name",
        )
    _load_classifier(own, state, head_keys, old_labels, new_labels, to_load, report)
    model.load_state_dict(to_load, strict=False)
    return report


def _load_classifier(
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    head_keys: list[str],
    old_labels: Sequence[str] | None,
    new_labels: Sequence[str] | None,
    to_load: dict[str, torch.Tensor],
    report: LoadReport,
) -> None:
    if not head_keys:  # num_classes=0: a pure feature extractor
        return
    weight_key = next((k for k in head_keys if k.endswith("weight")), head_keys[0])
    report.new_classes = own[weight_key].shape[0]
    if new_labels is not None and len(new_labels) != report.new_classes:
        raise ModelError(f"{len(new_labels)} labels given for a model with {report.new_classes} outputs")
    report.old_classes = state[weight_key].shape[0] if weight_key in state else None
    same_shapes = all(k in state and state[k].shape == own[k].shape for k in head_keys)
    same_labels = old_labels is None or new_labels is None or list(old_labels) == list(new_labels)
    if same_shapes and same_labels:
        for key in head_keys:
            to_load[key] = state[key]
            report.loaded.append(key)
        return
    report.classifier_reset = True
    for key in head_keys:
        report.skipped[key] = _CLASSIFIER_RESET
    if old_labels is None or new_labels is None:
        return
    # Rows can move only if everything but the class dimension agrees (same feature width).
    if not all(k in state and state[k].shape[1:] == own[k].shape[1:] for k in head_keys):
        return
    old_index = {label: i for i, label in enumerate(old_labels)}
    pairs = [(new_i, old_index[label]) for new_i, label in enumerate(new_labels) if label in old_index]
    pairs = [(n, o) for n, o in pairs if o < state[weight_key].shape[0]]
    if not pairs:
        return
    new_rows = torch.tensor([n for n, _ in pairs])
    old_rows = torch.tensor([o for _, o in pairs])
    for key in head_keys:
        merged = own[key].clone()  # fresh init for new classes, old rows for known ones
        merged[new_rows] = state[key][old_rows].to(merged.dtype)
        to_load[key] = merged
    report.rows_copied = len(pairs)

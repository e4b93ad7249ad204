"""Models by name, their preprocessing, checkpoints, transfer modes and model cards.

The card and the preprocessing need no torch and load at once; the rest (torch, timm) loads
on first use, so a server on ONNX Runtime never imports torch. Imports go one way:
``preprocess`` <- ``card`` <- ``registry`` (which also picks the preprocessing an architecture's
weights expect, ``preprocessing_for``).
"""

import importlib
from typing import TYPE_CHECKING, Any

from ocula.models.card import ModelCard
from ocula.models.preprocess import Preprocessing

if TYPE_CHECKING:
    from ocula.models.checkpoint import LoadReport, load_checkpoint, load_torch_file, read_state_dict
    from ocula.models.freeze import (
        configure, features_and_head, named_stage_groups, parse_mode, set_train_mode, stage_groups,
    )
    from ocula.models.registry import OFFLINE_WEIGHTS, create_model, list_models, preprocessing_for
    from ocula.models.small_cnn import SmallCNN

_LAZY = {
    **dict.fromkeys(("LoadReport", "load_checkpoint", "load_torch_file", "read_state_dict"), "ocula.models.checkpoint"),
    **dict.fromkeys(("configure", "features_and_head", "named_stage_groups", "parse_mode", "set_train_mode",
                     "stage_groups"), "ocula.models.freeze"),
    **dict.fromkeys(("OFFLINE_WEIGHTS", "create_model", "list_models", "preprocessing_for"), "ocula.models.registry"),
    "SmallCNN": "ocula.models.small_cnn",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocula.models' has no attribute {name!r}")

__all__ = [
    "OFFLINE_WEIGHTS",
    "LoadReport",
    "ModelCard",
    "Preprocessing",
    "SmallCNN",
    "configure",
    "create_model",
    "features_and_head",
    "list_models",
    "load_checkpoint",
    "load_torch_file",
    "named_stage_groups",
    "parse_mode",
    "preprocessing_for",
    "read_state_dict",
    "set_train_mode",
    "stage_groups",
]

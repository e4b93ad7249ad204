"""Models by name, their preprocessing, checkpoints, transfer modes and model cards."""

from ocula.models.card import ModelCard
from ocula.models.checkpoint import LoadReport, load_checkpoint, read_state_dict
from ocula.models.freeze import (
    configure, features_and_head, named_stage_groups, parse_mode, set_train_mode, stage_groups,
)
from ocula.models.preprocess import Preprocessing, preprocessing_for
from ocula.models.registry import OFFLINE_WEIGHTS, create_model, list_models
from ocula.models.small_cnn import SmallCNN

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
    "named_stage_groups",
    "parse_mode",
    "preprocessing_for",
    "read_state_dict",
    "set_train_mode",
    "stage_groups",
]

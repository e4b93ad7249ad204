"""Typed, frozen configuration for every job.

Unknown keys are errors (with close-match suggestions), every value is checked at the
boundary, and ``to_dict()`` writes every default out so a run's ``config.yaml`` says exactly
what ran. Nothing here imports the rest of ocula but ``errors``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from typing import Any

from ocula.errors import ConfigError, unknown

MODES_HELP = "head, finetune, full or last-N (for example last-2)"
IMBALANCE_CHOICES = ("auto", "weights", "sampler", "none")
MIX_CHOICES = ("none", "mixup", "cutmix")
CALIBRATE_CHOICES = ("phone", "temperature", "none")
LABEL_LEVELS = ("fine", "coarse")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # ocula.models.device resolves them
AUTO_CONSISTENCY = 12.0  # AugMix's weight of the Jensen-Shannon consistency loss


def parse_duration(text: str | int | float | None) -> float | None:
    """'90s', '10m', '1.5h' or a number of seconds -> seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text).lower())
        if not match:
            raise ConfigError(f"cannot read the time budget {text!r}", hint="write it as 90s, 10m or 1.5h")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"the time budget must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; ``None`` means 'chosen automatically'."""

    data: str
    val: str | None = None
    label_level: str = "fine"
    multi_label: bool = False  # sigmoid outputs even when every image has one label (multi-label data: always)
    val_fraction: float = 0.2
    model: str = "tf_efficientnet_lite0"
    pretrained: str = "default"
    mode: str = "finetune"
    augment: str = "crop"
    mix: str = "none"
    mix_alpha: float = 0.2
    random_erasing: float = 0.0
    consistency: float | None = None  # None: AUTO_CONSISTENCY with a phone policy, else 0
    epochs: int | None = None
    budget_seconds: float | None = None
    head_epochs: int = 5
    image_size: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    drop_rate: float = 0.2
    patience: int = 5
    min_epochs: int = 3
    imbalance: str = "auto"
    imbalance_threshold: float = 3.0
    top_k: int = 5
    calibrate: str = "phone"
    seed: int = 0
    threads: int | None = None
    device: str = "auto"  # auto: CUDA, then MPS, then the CPU
    out: str | None = None
    runs_root: str = "runs"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: {rule}")

        check(0.0 < self.val_fraction < 1.0, "val_fraction", "use a fraction between 0 and 1, e.g. 0.2")
        check(self.label_level in LABEL_LEVELS, "label_level", "use fine or coarse")
        check(self.epochs is None or self.epochs >= 1, "epochs", "use at least 1")
        check(self.head_epochs >= 0, "head_epochs", "use 0 or more")
        check(self.image_size is None or 16 <= self.image_size <= 1024, "image_size", "use 16 to 1024 pixels")
        check(self.batch_size >= 1, "batch_size", "use at least 1")
        check(self.lr is None or self.lr > 0, "lr", "use a positive learning rate such as 1e-3")
        check(self.weight_decay >= 0, "weight_decay", "use 0 or more")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "use 0 to below 1, e.g. 0.1")
        check(0 <= self.drop_rate < 1, "drop_rate", "use 0 to below 1")
        check(0 <= self.random_erasing <= 1, "random_erasing", "use a probability between 0 and 1")
        check(self.consistency is None or self.consistency >= 0, "consistency",
              "use 0 (off) or a positive weight such as 12")
        check(not self.consistency or self.augment.startswith("phone"), "consistency",
              "the consistency loss compares phone photos of each image: use it with --augment phone")
        check(not self.consistency or self.mix == "none", "consistency",
              "the consistency loss does not combine with --mix; choose one")
        check(self.mix_alpha > 0, "mix_alpha", "use a positive alpha such as 0.2")
        check(self.patience >= 1, "patience", "use at least 1 epoch")
        check(self.min_epochs >= 1, "min_epochs", "use at least 1 epoch")
        check(self.top_k >= 1, "top_k", "use at least 1")
        check(self.threads is None or self.threads >= 1, "threads", "use at least 1")
        check(self.imbalance_threshold >= 1, "imbalance_threshold", "use a ratio of at least 1")
        if self.imbalance not in IMBALANCE_CHOICES:
            raise unknown("imbalance handling", self.imbalance, IMBALANCE_CHOICES, ConfigError)
        if self.mix not in MIX_CHOICES:
            raise unknown("mix option", self.mix, MIX_CHOICES, ConfigError)
        if self.calibrate not in CALIBRATE_CHOICES:
            raise unknown("calibration", self.calibrate, CALIBRATE_CHOICES, ConfigError)
        if self.device not in DEVICE_CHOICES:
            raise unknown("device", self.device, DEVICE_CHOICES, ConfigError)

    @property
    def consistency_weight(self) -> float:
        """The consistency loss's weight for this run: as given, or by default AUTO_CONSISTENCY
        with a phone policy and no batch mixing (0 otherwise)."""
        if self.consistency is not None:
            return self.consistency
        return AUTO_CONSISTENCY if self.augment.startswith("phone") and self.mix == "none" else 0.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        for key in values:
            if key not in names:
                raise unknown("configuration key", key, names, ConfigError)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

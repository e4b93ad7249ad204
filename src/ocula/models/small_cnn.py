"""A small CNN trained from scratch, for tiny images where an ImageNet backbone is overkill.

LeNet-like (conv-conv-pool stages, then a linear classifier) with batch norm and global
average pooling, so any input of at least 16x16 works. It exposes the same methods the
training loop uses on timm models, so nothing downstream special-cases it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _conv_bn_relu(in_chans: int, out_chans: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """stem (32) -> 3 stages (32, 64, 128; each halves the size) -> avg pool -> dropout -> linear."""

    def __init__(self, num_classes: int, in_chans: int = 3, drop_rate: float = 0.25) -> None:
        super().__init__()
        widths = (32, 64, 128)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.stem = nn.Sequential(*_conv_bn_relu(in_chans, widths[0]))
        stages: list[nn.Module] = []
        prev = widths[0]
        for i, width in enumerate(widths):
            layers = _conv_bn_relu(prev, width)
            if i > 0:  # the first stage keeps the stem's width; later ones go deeper
                layers += _conv_bn_relu(width, width)
            stages.append(nn.Sequential(*layers, nn.MaxPool2d(2)))
            prev = width
        self.stages = nn.Sequential(*stages)
        self.num_features = prev
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier: nn.Module = self._make_classifier(num_classes)
        # timm-style metadata so code written for timm models works unchanged.
        self.pretrained_cfg: dict[str, Any] = {
            "architecture": "small_cnn",
            "input_size": (in_chans, 32, 32),
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "classifier": "classifier",
            "first_conv": "stem.0",
        }
        self.default_cfg = self.pretrained_cfg

    def _make_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups in timm's format: stem, then one group per stage."""
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)"}

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = self._make_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

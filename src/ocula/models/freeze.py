"""Which parameters train, at what learning rate, and how batch norm behaves meanwhile.

Transfer modes:
  head       only the classifier trains (the backbone is a fixed feature extractor)
  last-N     the last N stages before the classifier, plus the classifier
  full       everything trains from the start
  finetune   fastai's recipe: the training loop runs phase 1 as ``head``, then calls
             ``configure(model, "finetune", ...)`` for phase 2, where everything trains
             (usually with ``discriminative=True``) except the first stages that together
             hold under 1% of the weights (``EARLY_SHARE``): they run at full resolution, so
             back-propagating through them costs a third of the step time, while with
             discriminative rates they would move at 1/30 of the head's rate or less.
             (detectron2 keeps its stem and first stage frozen for the same reason.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ocula.errors import ModelError

MODES = ("head", "finetune", "full")
EARLY_SHARE = 0.01  # finetune keeps the leading stages frozen while they hold less than this
_LAST_N = re.compile(r"last-(\d+)")
_ACCEPTED = "head, finetune, full or last-N with N >= 1 (e.g. last-2)"


def parse_mode(mode: str) -> tuple[str, int | None]:
    """``"last-2"`` -> ``("last", 2)``; ``"head"`` -> ``("head", None)``."""
    text = mode.strip().lower() if isinstance(mode, str) else mode
    if text in MODES:
        return text, None
    match = _LAST_N.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ModelError(f"unknown transfer mode {mode!r}", hint=f"use {_ACCEPTED}")
    n = int(match.group(1))
    if n < 1:
        raise ModelError(f"transfer mode {mode!r} unfreezes no stage", hint=f"use {_ACCEPTED}")
    return "last", n


def _classifier_params(model: nn.Module) -> list[nn.Parameter]:
    if hasattr(model, "get_classifier"):
        return list(model.get_classifier().parameters())
    # Plain modules: by convention the last child with parameters is the classifier.
    children = [c for c in model.children() if any(True for _ in c.parameters())]
    return list(children[-1].parameters()) if children else []


def named_stage_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, parameters) from stem to head; the last group is the classifier."""
    head = _classifier_params(model)
    head_ids = {id(p) for p in head}
    named = dict(model.named_parameters())
    groups: list[tuple[str, list[nn.Parameter]]] = []
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        grouped = group_parameters(model, model.group_matcher(coarse=True))
        for i, names in enumerate(grouped.values()):
            params = [named[n] for n in names if id(named[n]) not in head_ids]
            groups.append(("stem" if i == 0 else f"stage{i}", params))
    else:
        for child_name, child in model.named_children():
            groups.append((child_name, [p for p in child.parameters() if id(p) not in head_ids]))
        seen = {id(p) for _, params in groups for p in params} | head_ids
        loose = [p for p in named.values() if id(p) not in seen]  # parameters set on the root module
        if loose:
            groups.insert(0, ("root", loose))
    groups = [(name, params) for name, params in groups if params]
    groups.append(("classifier", head))
    return groups


def _cheap_early_groups(groups: list[tuple[str, list[nn.Parameter]]]) -> int:
    """How many leading backbone groups together hold less than ``EARLY_SHARE`` of the weights."""
    total = sum(p.numel() for _, params in groups for p in params)
    count, held = 0, 0
    for _, params in groups[:-1]:
        held += sum(p.numel() for p in params)
        if held >= EARLY_SHARE * total:
            break
        count += 1
    return count


def stage_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups from stem to head (timm's coarse grouping); the last is the classifier."""
    return [params for _, params in named_stage_groups(model)]


def configure(
    model: nn.Module,
    mode: str,
    base_lr: float,
    *,
    discriminative: bool = False,
    lr_ratio: float = 100.0,
) -> list[dict[str, object]]:
    """Set ``requires_grad`` for ``mode``; return optimiser groups of the trainable parameters.

    With ``discriminative`` the rates grow geometrically with depth, from
    ``base_lr / lr_ratio`` at the first group of the whole network to ``base_lr`` at the
    classifier (fastai). A stage's rate depends on its depth only, not on how many stages
    are unfrozen, so it stays the same across the phases of ``finetune``.
    """
    kind, n = parse_mode(mode)
    if not base_lr > 0:
        raise ModelError(f"learning rate {base_lr!r} must be positive", hint="e.g. 1e-3")
    if not lr_ratio >= 1:
        raise ModelError(f"lr_ratio {lr_ratio!r} must be at least 1", hint="e.g. 100 (fastai's default)")
    groups = named_stage_groups(model)
    last = len(groups) - 1
    if kind == "head":
        first_trainable = last
    elif kind == "last":
        assert n is not None
        first_trainable = max(0, last - n)
    elif kind == "finetune":
        first_trainable = _cheap_early_groups(groups)
    else:
        first_trainable = 0

    for param in model.parameters():
        param.requires_grad_(False)
    param_groups: list[dict[str, object]] = []
    for i, (name, params) in enumerate(groups):
        if i < first_trainable or not params:
            continue
        for param in params:
            param.requires_grad_(True)
        depth = i / last if last else 1.0
        lr = base_lr * lr_ratio ** (depth - 1.0) if discriminative else base_lr
        param_groups.append({"params": params, "lr": lr, "name": name})
    return param_groups


def set_train_mode(model: nn.Module, *, freeze_bn: bool = True) -> None:
    """``model.train()``, but batch norm layers that should not adapt stay in eval mode.

    Frozen batch norm (all its parameters frozen) always stays in eval mode, so its running
    statistics are not overwritten by a frozen backbone. With ``freeze_bn`` every batch norm
    does (Keras' advice for fine-tuning with small batches). Do not use ``freeze_bn`` when
    training from scratch: the running statistics would never be learned.
    """
    model.train()
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            frozen = not any(p.requires_grad for p in module.parameters())
            if freeze_bn or frozen:
                module.eval()


def features_and_head(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """(pooled pre-logit features of the backbone, classifier), for head-only training.

    ``classifier(features(x)) == model(x)`` in eval mode. Call ``features`` with the model in
    eval mode (and under ``torch.inference_mode()`` when caching): in train mode timm applies
    the head dropout inside ``forward_head``, so the training loop should apply its own
    dropout to the cached features instead.
    """
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise TypeError(f"{type(model).__name__} has no forward_features/forward_head (timm-style models only)")

    def features(x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True)  # type: ignore[operator]

    return features, model.get_classifier()  # type: ignore[operator]

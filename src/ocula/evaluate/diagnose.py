"""The diagnosis: read the learning curves and the metrics as an experienced engineer would.

Each finding names its evidence (the numbers) and the next actions. The rules follow the
textbook reading of learning curves: both accuracies low and close together is underfitting
(the model cannot fit even the training data: give it capacity, pretrained features, more
training; never more regularisation); training accuracy high and validation accuracy far
below it, the gap widening, is overfitting (more data, augmentation, regularisation).

Levels: ``major`` (act on this first), ``minor`` (worth fixing), ``info``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

UNDERFIT_TRAIN = 0.80  # training accuracy below this, with a small gap: the model does not fit
MIN_EPOCHS = 3  # fewer epochs than this cannot show overfitting: the gap has not had time to widen
SMALL_GAP = 0.10
OVERFIT_GAP = 0.15  # training minus validation accuracy
MINOR_GAP = 0.08
FEW_IMAGES = 30  # per class, median over classes
VERY_FEW_IMAGES = 10
IMBALANCE_RATIO = 3.0
POOR_ECE = 0.10


@dataclass(frozen=True)
class Finding:
    level: str  # major | minor | info
    kind: str  # healthy | underfitting | overfitting | generalisation-gap | data-limited | imbalance | ...
    title: str
    evidence: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(
    epochs: list[dict[str, Any]],
    summary: dict[str, Any],
    *,
    train_counts: list[int] | None = None,
    pretrained: bool = True,
    mode: str = "finetune",
) -> list[Finding]:
    """Findings from the per-epoch history (``metrics.json`` "epochs") and a metrics summary.

    ``train_counts`` are the training images per class; ``pretrained`` and ``mode`` say how the
    model was trained, which decides the remedies.
    """
    curves = _curves(epochs)
    findings = [
        *_fit(curves, summary, pretrained, mode),
        *_data_limited(train_counts or [], summary, pretrained),
        *_imbalance(train_counts or [], summary),
        *_label_noise(summary),
        *_calibration(summary),
    ]
    if not any(f.level == "major" for f in findings):
        evidence = [f"accuracy {summary['accuracy']:.3f} on {summary['n']} images"]
        if curves:
            evidence.append(f"last epoch: training {curves['train'][-1]:.3f}, validation {curves['val'][-1]:.3f}")
        findings.insert(0, Finding("info", "healthy", "No major problem: the model fits and generalises",
                                   evidence, ["check the robustness section (--shift phone) before deploying",
                                              "more data for the weakest classes is the surest next gain"]))
    order = {"major": 0, "minor": 1, "info": 2}
    return sorted(findings, key=lambda f: (f.kind != "healthy", order[f.level]))


def _curves(epochs: list[dict[str, Any]]) -> dict[str, list[float]]:
    rows = [e for e in epochs if "train:accuracy" in e and "validation:accuracy" in e]
    if not rows:
        return {}
    return {"train": [float(e["train:accuracy"]) for e in rows], "val": [float(e["validation:accuracy"]) for e in rows],
            "val_loss": [float(e.get("validation:loss", np.nan)) for e in rows]}


def _fit(curves: dict[str, list[float]], summary: dict[str, Any], pretrained: bool, mode: str) -> list[Finding]:
    if not curves:
        return []
    train, val = curves["train"][-1], curves["val"][-1]
    gap = train - val
    n = len(curves["train"])
    # Epoch 1's training accuracy is averaged while the model changes fastest: compare from epoch 2.
    ref = 1 if n >= MIN_EPOCHS else 0
    first_gap = curves["train"][ref] - curves["val"][ref]
    evidence = [f"learning curves: training accuracy {train:.3f}, validation accuracy {val:.3f} after {n} epoch(s) "
                f"(gap {gap:+.3f})"]
    brief = n < MIN_EPOCHS and val < UNDERFIT_TRAIN  # too short to fit the data, let alone memorise it
    if brief or (train < UNDERFIT_TRAIN and gap < SMALL_GAP):
        still_rising = n >= 2 and curves["train"][-1] > curves["train"][-2] + 0.005
        if still_rising:
            evidence.append(f"training accuracy was still rising ({curves['train'][-2]:.3f} -> {train:.3f})")
        if brief:
            evidence.append(f"only {n} epoch(s): too few to fit the training data, let alone to memorise it "
                            "(training accuracy is averaged over an epoch while the model still changes)")
        else:
            evidence.append("both accuracies are low and close together")
        actions = []
        if not pretrained:
            actions.append("use transfer learning: start from pretrained weights (the default "
                           "tf_efficientnet_lite0, --pretrained default) instead of training from scratch")
        elif mode == "head":
            actions.append("unfreeze more of the backbone: --mode finetune or --mode last-2")
        actions += [
            "train longer (more --epochs or a larger --budget)" + (": accuracy was still rising" if still_rising else ""),
            "collect more labelled images per class, and use data augmentation (--augment phone) "
            "so the model sees more varied examples",
            "reduce regularisation rather than add it: lower --label-smoothing and --drop-rate; "
            "dropout would make an underfitting model worse",
        ]
        return [Finding("major", "underfitting", "Underfitting: the model does not fit even its training data",
                        evidence, actions)]
    val_loss = [v for v in curves["val_loss"] if v == v]
    loss_rise = bool(val_loss) and val_loss[-1] > 1.1 * min(val_loss) and val_loss.index(min(val_loss)) < len(val_loss) - 1
    widening = n >= 2 and gap > first_gap + 0.05
    if gap >= MINOR_GAP and (widening or loss_rise):
        if widening:
            evidence.append(f"the gap widened from {first_gap:+.3f} at epoch {ref + 1} to {gap:+.3f}")
        if loss_rise:
            evidence.append(f"validation loss rose from its minimum {min(val_loss):.3f} to {val_loss[-1]:.3f}")
        actions = [
            "use data augmentation (--augment phone, or crop_color_transform) so the model cannot memorise",
            "collect more labelled images: the model learns the training set by heart",
            "add regularisation: --drop-rate 0.3, --weight-decay 0.05, --label-smoothing 0.1",
            "stop earlier (--patience) or train fewer epochs",
        ]
        if not pretrained:
            actions.insert(1, "use transfer learning from pretrained weights: far fewer parameters to fit")
        elif mode not in ("head",):
            actions.append("freeze more of the backbone (--mode head or last-1): fewer weights to fit")
        level = "major" if gap >= OVERFIT_GAP else "minor"
        return [Finding(level, "overfitting", "Overfitting: training accuracy far above validation accuracy",
                        evidence, actions)]
    if gap >= OVERFIT_GAP:
        return [Finding("minor", "generalisation-gap", "A steady gap between training and validation accuracy",
                        evidence + ["the gap is not widening and validation loss is not rising: the model is not "
                                    "getting worse, but it fits the training images far better than new ones"],
                        ["more labelled images close a steady gap most surely",
                         "stronger augmentation (--augment phone) and regularisation (--drop-rate 0.3) help next"])]
    if train < 0.9 and gap < SMALL_GAP / 2:
        return [Finding("minor", "underfitting", "Some underfitting: there is room to fit the training data better",
                        evidence, ["train longer or unfreeze more layers (--mode finetune)",
                                   "more data and augmentation (--augment phone)"])]
    return []


def _data_limited(counts: list[int], summary: dict[str, Any], pretrained: bool) -> list[Finding]:
    present = [c for c in counts if c > 0]
    if not present:
        return []
    median, smallest = float(np.median(present)), min(present)
    if median >= FEW_IMAGES and smallest >= VERY_FEW_IMAGES:
        return []
    names = summary.get("classes", [])
    few = [f"{names[i]} ({c})" for i, c in sorted(enumerate(counts), key=lambda x: x[1])[:5] if i < len(names)]
    level = "major" if summary["accuracy"] < 0.8 and median < FEW_IMAGES else "minor"
    actions = [f"collect more images, first for the smallest classes: {', '.join(few)}",
               "use data augmentation (--augment phone) to make the most of the images there are"]
    if not pretrained:
        actions.insert(1, "use transfer learning (pretrained weights): it needs far fewer images per class")
    return [Finding(level, "data-limited", "Few images per class",
                    [f"median {median:.0f} training images per class, smallest class {smallest}"], actions)]


def _imbalance(counts: list[int], summary: dict[str, Any]) -> list[Finding]:
    present = [(c, row["recall"], row["class"]) for c, row in zip(counts, summary["per_class"])
               if c > 0 and row["support"] > 0]
    if len(present) < 2:
        return []
    sizes = np.array([c for c, _, _ in present], dtype=float)
    if sizes.max() / sizes.min() < IMBALANCE_RATIO:
        return []
    order = np.argsort(sizes)
    third = max(1, len(order) // 3)
    small = float(np.mean([present[i][1] for i in order[:third]]))
    large = float(np.mean([present[i][1] for i in order[-third:]]))
    evidence = [f"largest class {sizes.max():.0f} training images, smallest {sizes.min():.0f} "
                f"({sizes.max() / sizes.min():.1f}:1)",
                f"mean recall of the smallest third of classes {small:.3f}, of the largest third {large:.3f}"]
    if large - small < 0.05:
        return [Finding("info", "imbalance", "Imbalanced classes, but the small classes are not worse off", evidence)]
    return [Finding("major" if large - small >= 0.2 else "minor", "imbalance",
                    "Imbalance-driven errors: small classes are recognised worse", evidence,
                    ["weight the loss by class (--imbalance weights) or sample classes evenly (--imbalance sampler)",
                     "collect more images for the small classes: "
                     + ", ".join(present[i][2] for i in order[:min(3, third)])])]


def _label_noise(summary: dict[str, Any]) -> list[Finding]:
    confident = summary.get("confident_mistakes", 0)
    if confident < 3 or confident < 0.01 * summary["n"]:
        return []
    return [Finding("minor", "label-noise", "Label-noise suspects: confident disagreements with the labels",
                    [f"{confident} of {summary['mistakes']} mistakes were made with probability >= 0.9"],
                    ["look at the confident mistakes in the gallery: a wrong label, a near-duplicate class "
                     "or an ambiguous photo each needs a different fix",
                     "relabel or remove wrong labels, then retrain; --label-smoothing 0.1 softens the rest"])]


def _calibration(summary: dict[str, Any]) -> list[Finding]:
    cal = summary["calibration"]
    if cal["ece"] < POOR_ECE:
        return []
    over = cal["mean_confidence"] > summary["accuracy"]
    direction = "over-confident" if over else "under-confident"
    evidence = [f"expected calibration error {cal['ece']:.3f}; mean confidence {cal['mean_confidence']:.3f} "
                f"against accuracy {summary['accuracy']:.3f}"]
    refit = ("train without --calibrate none: ocula then fits a temperature on the validation split and every "
             "command applies it; if this data differs from that split, set thresholds on held-out data like it")
    actions = ([refit, "label smoothing (--label-smoothing 0.1) tempers over-confidence"] if over else
               ["the probabilities are too low to read as confidence (a temperature below 1 sharpens them): " + refit,
                "set decision thresholds on held-out data, not at 0.5"])
    return [Finding("minor", "calibration", f"Poor calibration: the model is {direction}", evidence, actions)]

"""The diagnosis rules on learning curves an engineer would recognise at a glance.

tests/evaluate/test_job.py builds the same three cases with real training; these pin the
rules on curves written out by hand, including the borderline ones.
"""

from __future__ import annotations

import numpy as np

from ocula.evaluate import diagnose, summarize


def _summary(accuracy: float, n: int = 200, classes: int = 4, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    right = rng.random(n) < accuracy
    pred = np.where(right, labels, (labels + 1) % classes)
    probs = np.full((n, classes), 0.1 / (classes - 1))
    probs[np.arange(n), pred] = 0.6  # moderately confident
    probs /= probs.sum(1, keepdims=True)
    return summarize(labels, probs, [f"c{i}" for i in range(classes)])


def _epochs(train: list[float], val: list[float], val_loss: list[float] | None = None) -> list[dict]:
    losses = val_loss or [1.0] * len(train)
    return [{"epoch": i + 1, "train:accuracy": t, "validation:accuracy": v, "validation:loss": loss}
            for i, (t, v, loss) in enumerate(zip(train, val, losses))]


def _by_kind(findings):
    return {f.kind: f for f in findings}


def test_seventy_three_and_seventy_two_is_underfitting_and_never_more_dropout():
    findings = diagnose(_epochs([0.60, 0.70, 0.73], [0.60, 0.69, 0.72]), _summary(0.72), pretrained=True,
                        mode="head", train_counts=[200] * 4)
    under = _by_kind(findings)["underfitting"]
    assert under.level == "major" and findings[0] is under
    text = " ".join(under.actions).lower()
    assert "unfreeze" in text and "augment" in text and "more labelled images" in text
    assert "add dropout" not in text and "increase" not in text
    assert "overfitting" not in _by_kind(findings)


def test_from_scratch_underfitting_recommends_transfer_learning():
    under = _by_kind(diagnose(_epochs([0.4], [0.38]), _summary(0.38), pretrained=False, mode="full"))["underfitting"]
    assert "pretrained" in under.actions[0]


def test_widening_gap_is_overfitting_with_augmentation_first():
    findings = diagnose(_epochs([0.5, 0.8, 0.95, 1.0], [0.48, 0.6, 0.62, 0.6], [1.2, 1.0, 1.1, 1.3]),
                        _summary(0.6), pretrained=True, mode="finetune", train_counts=[100] * 4)
    over = _by_kind(findings)["overfitting"]
    assert over.level == "major"
    assert "augment" in over.actions[0] and any("dropout" in a or "drop-rate" in a for a in over.actions)
    assert any("widened" in e for e in over.evidence) and any("validation loss rose" in e for e in over.evidence)


def test_well_fit_run_is_healthy():
    findings = diagnose(_epochs([0.8, 0.95, 0.97], [0.82, 0.94, 0.96]), _summary(0.96), train_counts=[100] * 4)
    assert findings[0].kind == "healthy" and not [f for f in findings if f.level == "major"]


def test_few_images_per_class_and_imbalance_name_the_classes():
    summary = _summary(0.7, classes=4)
    summary["per_class"][0]["recall"] = 0.2  # the small class is the one that fails
    summary["per_class"][3]["recall"] = 0.95
    findings = _by_kind(diagnose([], summary, train_counts=[5, 40, 60, 90]))
    assert "c0 (5)" in findings["data-limited"].actions[0]
    assert findings["imbalance"].level in ("major", "minor")
    assert "--imbalance weights" in findings["imbalance"].actions[0]


def test_over_confident_model_gets_a_calibration_finding():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 500)
    pred = np.where(rng.random(500) < 0.6, labels, (labels + 1) % 3)
    probs = np.full((500, 3), 0.005)
    probs[np.arange(500), pred] = 0.99
    findings = _by_kind(diagnose([], summarize(labels, probs, ["a", "b", "c"])))
    assert "over-confident" in findings["calibration"].title
    assert findings["label-noise"].level == "minor"  # 40% wrong at 0.99: check those labels


def test_steady_gap_is_a_minor_finding_not_overfitting():
    """Phone-augmented fine-tuning on grocery: 0.99 vs 0.81, but the gap shrinks and loss falls."""
    findings = _by_kind(diagnose(_epochs([0.5, 0.9, 0.95, 0.99], [0.55, 0.70, 0.78, 0.81], [1.5, 1.2, 1.0, 0.97]),
                                 _summary(0.81), train_counts=[100] * 4))
    assert "overfitting" not in findings
    assert findings["generalisation-gap"].level == "minor" and "healthy" in findings

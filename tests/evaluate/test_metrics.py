"""Metrics against scikit-learn's reference implementations on random predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from ocula.evaluate.metrics import calibration, most_confused, selective, selective_sentence, summarize


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5))
    logits[np.arange(300), labels] += 1.5  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_summary_matches_scikit_learn(predictions):
    labels, probs = predictions
    names = ["a", "b", "c", "d", "e"]
    s = summarize(labels, probs, names, top_k=3)
    pred = probs.argmax(1)
    assert s["accuracy"] == pytest.approx(sk.accuracy_score(labels, pred))
    assert s["top_k_accuracy"] == pytest.approx(sk.top_k_accuracy_score(labels, probs, k=3))
    assert s["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(labels, pred))
    assert s["log_loss"] == pytest.approx(sk.log_loss(labels, probs))
    assert s["confusion"] == sk.confusion_matrix(labels, pred).tolist()
    p, r, f, support = sk.precision_recall_fscore_support(labels, pred)
    assert [row["f1"] for row in s["per_class"]] == pytest.approx(f)
    assert [row["support"] for row in s["per_class"]] == support.tolist()
    assert s["macro"]["f1"] == pytest.approx(sk.f1_score(labels, pred, average="macro"))
    assert s["weighted"]["precision"] == pytest.approx(sk.precision_score(labels, pred, average="weighted"))
    assert s["mistakes"] == int((pred != labels).sum())


def test_calibration_error_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.random(20000) < confidence  # right exactly as often as it claims
    labels = np.where(correct, 0, 1)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    assert calibration(labels, probs)["ece"] < 0.02
    over = np.stack([np.full(20000, 0.99), np.full(20000, 0.01)], axis=1)  # claims 0.99, right ~75%
    result = calibration(labels, over)
    assert result["ece"] == pytest.approx(0.99 - correct.mean(), abs=0.01)
    assert sum(b["count"] for b in result["bins"]) == 20000


def test_most_confused_pairs_largest_first():
    matrix = np.array([[5, 3, 0], [1, 4, 7], [0, 0, 9]])
    assert most_confused(matrix) == [(1, 2, 7), (0, 1, 3), (1, 0, 1)]


def test_classes_absent_from_the_data_do_not_drag_macro_averages():
    labels = np.array([0, 0, 1, 1])
    probs = np.eye(3)[[0, 0, 1, 1]]
    s = summarize(labels, probs, ["x", "y", "never-seen"])
    assert s["macro"]["f1"] == 1.0 and s["balanced_accuracy"] == 1.0


def test_selective_prediction_names_the_threshold_that_keeps_the_target():
    # 10 images, most confident first: the top 6 are right, then a mistake, then 3 more right/wrong.
    confidence = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55])
    right = np.array([1, 1, 1, 1, 1, 1, 0, 1, 0, 0], bool)
    probs = np.column_stack([confidence, 1 - confidence])
    labels = np.where(right, 0, 1)
    result = selective(labels, probs, target=0.95)
    assert result["threshold"] == 0.75 and result["coverage"] == 0.6 and result["accuracy"] == 1.0
    assert "Answer 60% of photos at 100.0% accuracy" in selective_sentence(result)
    assert "--min-confidence 0.75" in selective_sentence(result)
    loose = selective(labels, probs, target=0.6)  # every image answered already reaches 60%
    assert loose["threshold"] == 0.0 and loose["coverage"] == 1.0
    assert selective(labels, probs, target=0.8)["threshold"] == 0.65  # 8 answered, 7 right
    rows = {row["threshold"]: row for row in result["table"]}
    assert rows[0.9]["coverage"] == 0.3 and rows[0.9]["accuracy"] == 1.0
    assert result["curve"][-1]["coverage"] == 1.0 and result["curve"][-1]["accuracy"] == 0.7


def test_selective_prediction_says_when_no_threshold_reaches_the_target():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    result = selective(np.array([1, 1, 0]), probs, target=0.95)
    assert result["threshold"] is None and result["accuracy"] is None
    assert selective_sentence(result).startswith("No confidence threshold reaches 95% accuracy")


def test_tied_confidences_are_answered_or_rejected_together():
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4]])
    result = selective(np.array([0, 1, 0]), probs, target=0.95)  # the tie at 0.8 holds a mistake
    assert result["threshold"] is None

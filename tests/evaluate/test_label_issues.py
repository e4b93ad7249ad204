"""Confident learning: flipped labels are found, agreeing labels are not, and it matches cleanlab's rule."""

from __future__ import annotations

import numpy as np

from ocula.evaluate.label_issues import confident_joint, find_label_issues, precision_recall_at


def _noisy(n_per_class: int = 60, k: int = 4, flips: int = 12, seed: int = 0):
    """Probabilities of a decent model (right class ~0.7) on data whose labels are partly flipped."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(k), n_per_class)
    logits = rng.normal(0, 1, (len(truth), k))
    logits[np.arange(len(truth)), truth] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(len(truth), flips, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, flips)) % k
    return probs, given, flipped


def test_flipped_labels_come_first():
    probs, given, flipped = _noisy()
    found = find_label_issues(probs, given)
    precision, recall = precision_recall_at(found.order, flipped, len(flipped))
    assert precision >= 0.7 and recall >= 0.7
    # ranked by the probability of the given label, lowest first
    assert np.all(np.diff(found.self_confidence[found.order]) >= 0)
    assert 0.02 < found.noise_rate < 0.15


def test_a_label_the_model_agrees_with_is_never_flagged():
    probs, given, _ = _noisy()
    found = find_label_issues(probs, given)
    assert not np.any(probs[found.order].argmax(1) == given[found.order])


def test_clean_confident_data_has_no_issues():
    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    found = find_label_issues(probs, labels)
    assert len(found.order) == 0 and found.noise_rate == 0


def test_confident_joint_rows_sum_to_the_label_counts():
    probs, given, _ = _noisy()
    joint, confident = confident_joint(probs, given)
    assert np.allclose(joint.sum(1), np.bincount(given))
    assert confident.min() >= -1 and confident.max() < probs.shape[1]

"""Temperature scaling on arrays: it recovers a known temperature and never changes a prediction."""

from __future__ import annotations

import numpy as np
import pytest

from ocula.evaluate.calibration import fit_temperature, rescale
from ocula.evaluate.metrics import calibration, log_loss


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("true_temperature", [0.4, 1.0, 2.5])
def test_fit_recovers_the_temperature_that_generated_the_labels(true_temperature):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (6000, 8))
    truth = _softmax(logits / true_temperature)
    labels = np.array([rng.choice(8, p=row) for row in truth])
    model = _softmax(logits)  # what an uncalibrated model says
    fitted = fit_temperature(model, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)
    calibrated = rescale(model, fitted)
    assert np.array_equal(calibrated.argmax(1), model.argmax(1))
    np.testing.assert_allclose(calibrated.sum(1), 1.0, atol=1e-9)
    assert log_loss(labels, calibrated) <= log_loss(labels, model) + 1e-12
    assert calibration(labels, calibrated)["ece"] < 0.03


def test_an_under_confident_model_is_sharpened():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 2000)
    logits = rng.normal(0, 1, (2000, 5))
    logits[np.arange(2000), labels] += 3.0  # right most of the time ...
    model = _softmax(logits / 4.0)  # ... but says so timidly
    fitted = fit_temperature(model, labels)
    assert fitted < 0.5
    before, after = calibration(labels, model), calibration(labels, rescale(model, fitted))
    assert before["mean_confidence"] < 0.5 < after["mean_confidence"] and after["ece"] < before["ece"] / 3


def test_no_images_is_an_error():
    with pytest.raises(ValueError, match="no images"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))

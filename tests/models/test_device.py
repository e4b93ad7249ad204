"""--device: auto picks what is present; an absent GPU is a one-line error, before any work."""

from __future__ import annotations

import pytest
import torch

from ocula.errors import UsageError
from ocula.models.device import resolve
from tests.conftest import run_cli


def test_auto_is_the_best_device_present():
    device = resolve("auto")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert device.type == expected
    if device.type == "cpu":
        assert device.dtype is None and device.scaler() is None and not device.pin_memory
        x = torch.ones(2)
        assert device.put(x) is x


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_an_absent_gpu_is_one_line_with_exit_2(tmp_path):
    with pytest.raises(UsageError, match="no CUDA device found; this machine has cpu"):
        resolve("cuda")
    result = run_cli("train", str(tmp_path), "--device", "cuda")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--device cuda" in result.stderr


def test_an_unknown_device_is_refused(tmp_path):
    result = run_cli("train", str(tmp_path), "--device", "tpu")
    assert result.returncode == 2 and "unknown device 'tpu'" in result.stderr

"""A folder with every kind of broken file: the audit names each, training skips only the unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data.conftest import bad_dataset

UNUSABLE = {"zero.jpg": "zero_byte", "truncated.jpg": "truncated", "text.png": "not_image", "tiny.jpg": "too_small"}
CONVERTED = ("cmyk.jpg", "sixteen.png", "rotated.jpg")


def test_data_check_lists_every_problem_and_the_leak(tmp_path):
    data = bad_dataset(tmp_path / "bad")
    out = tmp_path / "audit.json"
    result = run_cli("data", "check", str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(out.read_text())
    unusable = {Path(p).name: reason for p, reason in report["unusable"].items()}
    assert unusable == UNUSABLE
    codes = {(f["code"], Path(f["path"]).name if f.get("path") else None, f["level"]) for f in report["findings"]}
    assert ("mode_converted", "cmyk.jpg", "info") in codes
    assert ("mode_converted", "sixteen.png", "info") in codes
    assert ("exif_rotated", "rotated.jpg", "info") in codes
    leaks = [f for f in report["findings"] if f["code"] == "leakage"]
    assert leaks and all(f["level"] == "error" for f in leaks)
    assert "shared" in json.dumps(leaks)
    for name, reason in UNUSABLE.items():  # the printed table names each file and reason
        assert name in result.stdout and reason in result.stdout
    assert "leakage" in result.stdout
    strict = run_cli("data", "check", str(data), "--out", str(out), "--strict")
    assert strict.returncode == 1


@pytest.mark.slow
def test_train_skips_only_the_unusable_files(tmp_path):
    data = bad_dataset(tmp_path / "bad")
    result = run_cli("train", str(data), "--mode", "head", "--epochs", "2", "--image-size", "64",
                     "--out", str(tmp_path / "run"), "--runs-root", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "run")
    for name, reason in UNUSABLE.items():
        assert f"{name}: {reason}" in result.stdout
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    used = {Path(row[0]).resolve() for row in split["train"] + split["val"]}
    names = {p.name for p in used}
    assert not names & set(UNUSABLE)
    assert set(CONVERTED) <= names
    every_file = {p.resolve() for p in data.rglob("*") if p.is_file()}
    assert used == {p for p in every_file if p.name not in UNUSABLE}

"""`ocula data check --label-issues` on real files: a photo filed under the wrong class is ranked at the top."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from tests.conftest import run_cli, write_dataset


@pytest.mark.slow
def test_a_misfiled_photo_is_ranked_near_the_top_and_listed(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=12, size=64)
    moved = data / "square" / "circle_003.png"
    shutil.move(data / "circle" / "circle_003.png", moved)  # a circle filed as a square
    (data / "square" / "broken.png").write_bytes(b"not a png")  # skipped and listed, not a crash
    out = tmp_path / "audit" / "data_audit.json"
    out.parent.mkdir()

    result = run_cli("data", "check", str(data), "--out", str(out), "--label-issues")

    assert result.returncode == 0, result.stderr
    with (out.parent / "label_issues.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert 1 <= len(rows) <= 3  # of 36 photos: the misfiled one and at most its look-alikes
    misfiled = [row for row in rows if row["path"].endswith("square/circle_003.png")]
    assert misfiled and int(misfiled[0]["rank"]) <= 2
    assert misfiled[0]["given_label"] == "square" and misfiled[0]["suggested_label"] == "circle"
    assert (out.parent / "label_issues.png").read_bytes()[:4] == b"\x89PNG"
    assert "look mislabelled" in result.stdout and "circle_003.png" in result.stdout
    findings = json.loads(out.read_text())["findings"]
    assert any(f["code"] == "label_issues" for f in findings)
    assert any("broken.png" in (f.get("path") or "") for f in findings)
    assert all("broken.png" not in row["path"] for row in rows)


def test_too_few_photos_is_one_line(tmp_path):
    data = write_dataset(tmp_path / "data", classes=("a", "b"), per_class=3)
    result = run_cli("data", "check", str(data), "--out", str(tmp_path / "a.json"), "--label-issues")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "too few" in (result.stderr + result.stdout)

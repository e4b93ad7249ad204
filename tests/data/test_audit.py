from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ocula.data import AuditReport, DataSource, Sample, audit, load_source
from ocula.data.audit import Finding
from ocula.data.phash import hash_array, near_pairs, phash, popcount

from .conftest import bad_dataset, class_folders, pixels, save_image


def codes(report: AuditReport, level: str | None = None) -> dict[str, str]:
    """file name -> code of its findings (for per-file findings)."""
    return {Path(f.path).name: f.code for f in report.findings if f.path and (level is None or f.level == level)}


def test_bad_folder_every_problem_has_the_right_reason_and_level(tmp_path: Path) -> None:
    source = load_source(bad_dataset(tmp_path))
    seen: list[tuple[int, int]] = []

    report = audit(source, min_side=32, min_per_class=5, progress=lambda done, total: seen.append((done, total)))

    by_name = {Path(path).name: reason for path, reason in report.unusable.items()}
    assert by_name == {
        "zero.jpg": "zero_byte",
        "truncated.jpg": "truncated",
        "text.png": "not_image",
        "tiny.jpg": "too_small",
    }
    for finding in report.findings:
        if finding.path in report.unusable:
            assert finding.level == "warning" and finding.code == report.unusable[finding.path]
    info = [(Path(f.path or "").name, f.code, f.message) for f in report.findings if f.level == "info"]
    assert ("rotated.jpg", "exif_rotated") in [(name, code) for name, code, _ in info]
    notes = {name: message for name, code, message in info if code == "mode_converted"}
    assert "cmyk_converted" in notes["cmyk.jpg"] and "16bit_converted" in notes["sixteen.png"]
    assert [(Path(f.path or "").name, f.split) for f in report.errors] == [("shared_copy.jpg", "val")]
    assert report.errors[0].code == "leakage"
    assert report.counts["train"] == {"cat": 9, "dog": 6}
    assert report.counts["val"] == {"cat": 2, "dog": 3}
    assert len(report.digests) == 9 + 6 + 5 and not set(report.digests) & set(report.unusable)
    assert seen[-1] == (len(source.all_samples()), len(source.all_samples()))
    assert len(report.usable(source.train)) == 15
    assert report.apply(source).val == source.val


def near_copy(src: Path, dst: Path) -> None:
    """Re-encode at lower quality and 90% size: different bytes, same picture."""
    image = Image.open(src)
    image.resize((image.width * 9 // 10, image.height * 9 // 10), Image.Resampling.BILINEAR).save(dst, quality=70)


def test_exact_and_near_duplicates_within_a_split(tmp_path: Path) -> None:
    class_folders(tmp_path, {"a": 6, "b": 6})
    shutil.copy(tmp_path / "a" / "a_0.jpg", tmp_path / "a" / "exact.jpg")
    near_copy(tmp_path / "b" / "b_0.jpg", tmp_path / "b" / "near.jpg")

    report = audit(load_source(tmp_path))

    assert codes(report) == {"exact.jpg": "duplicate", "near.jpg": "near_duplicate"}
    assert not report.errors and not report.unusable
    assert all(f.level == "warning" for f in report.findings)


def test_near_copy_across_train_and_test_is_leakage(tmp_path: Path) -> None:
    class_folders(tmp_path / "train", {"a": 5, "b": 5})
    class_folders(tmp_path / "test", {"a": 2, "b": 2}, seed=300)
    near_copy(tmp_path / "train" / "a" / "a_3.jpg", tmp_path / "test" / "a" / "sneaky.jpg")

    report = audit(load_source(tmp_path))

    assert [(Path(f.path or "").name, f.code, f.split) for f in report.errors] == [("sneaky.jpg", "leakage", "test")]
    assert "near copy of train image" in report.errors[0].message


def test_class_findings_few_images_imbalance_empty(tmp_path: Path) -> None:
    class_folders(tmp_path, {"big": 24, "small": 2})
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"")

    report = audit(load_source(tmp_path), min_per_class=5, imbalance_ratio=10)

    by_code = {f.code: f for f in report.findings if f.path is None}
    assert by_code["few_images"].level == "warning" and "'small' has 2" in by_code["few_images"].message
    assert by_code["imbalance"].level == "warning" and "12.0x" in by_code["imbalance"].message
    empty = sorted(f.message.split("'")[1] for f in report.findings if f.code == "empty_class")
    assert empty == ["broken", "empty"]
    assert all(f.level == "error" for f in report.findings if f.code == "empty_class")
    assert report.counts["train"] == {"big": 24, "broken": 0, "empty": 0, "small": 2}


def test_json_round_trip(tmp_path: Path) -> None:
    source = load_source(bad_dataset(tmp_path / "data"))
    report = audit(source)

    written = report.to_json(tmp_path / "out" / "audit.json")
    again = AuditReport.from_json(written)

    assert again.findings == report.findings
    assert again.unusable == report.unusable and again.digests == report.digests and again.counts == report.counts
    assert again.by_code() == report.by_code()
    (tmp_path / "runs").mkdir()
    assert report.to_json(tmp_path / "runs") == tmp_path / "runs" / "data_audit.json"
    assert AuditReport.from_json(tmp_path / "runs").errors == report.errors


def test_second_audit_reuses_cached_results(tmp_path: Path) -> None:
    source = load_source(bad_dataset(tmp_path / "data"))
    first = audit(source, cache=tmp_path / "cache")
    assert (tmp_path / "cache" / "audit.sqlite").exists()
    second = audit(source, cache=tmp_path / "cache")
    uncached = audit(source, cache=False)
    for report in (second, uncached):
        assert report.findings == first.findings
        assert report.unusable == first.unusable and report.digests == first.digests


def test_audit_cache_skips_decoding(tmp_path: Path) -> None:
    """A cached result for the same bytes is trusted: decode is skipped entirely."""
    from ocula.data.audit_files import FileResult, inspect_file

    path = save_image(tmp_path / "a.jpg")
    fresh = inspect_file(str(path))
    assert fresh.sha1 is not None and fresh.phash is not None and (fresh.width, fresh.height) == (64, 48)
    planted = FileResult("", fresh.sha1, None, "", ["planted"], 1, 2, 3)
    reused = inspect_file(str(path), {fresh.sha1: planted})
    assert (reused.path, reused.notes, reused.width, reused.phash) == (str(path), ["planted"], 1, 3)


def test_phash_survives_reencoding_and_separates_pictures() -> None:
    original = Image.fromarray(pixels(3, (200, 150)))
    buffer = io.BytesIO()
    original.resize((180, 135)).save(buffer, "JPEG", quality=60)
    copy = Image.open(buffer)
    other = Image.fromarray(pixels(4, (200, 150)))
    distance = lambda a, b: bin(phash(a) ^ phash(b)).count("1")  # noqa: E731
    assert distance(original, copy) <= 4
    assert distance(original, other) > 10


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
    st.lists(st.integers(0, 2**64 - 1), max_size=40),
    st.integers(0, 64),
)
def test_near_pairs_matches_brute_force(left: list[int], right: list[int], max_distance: int) -> None:
    # Cluster some hashes so small distances actually occur.
    left = left + [value ^ 1 for value in left[:5]]
    expected_within = {
        (i, j, bin(a ^ b).count("1"))
        for i, a in enumerate(left)
        for j, b in enumerate(left)
        if i < j and bin(a ^ b).count("1") <= max_distance
    }
    expected_across = {
        (i, j, bin(a ^ b).count("1"))
        for i, a in enumerate(left)
        for j, b in enumerate(right)
        if bin(a ^ b).count("1") <= max_distance
    }
    assert set(near_pairs(hash_array(left), max_distance=max_distance, block=7)) == expected_within
    assert set(near_pairs(hash_array(left), hash_array(right), max_distance=max_distance, block=7)) == expected_across


def test_popcount_counts_bits() -> None:
    values = np.array([0, 1, 2**64 - 1, 0b1011], dtype=np.uint64)
    assert popcount(values).tolist() == [0, 1, 64, 3]


def test_report_helpers_on_a_handmade_source(tmp_path: Path) -> None:
    good = save_image(tmp_path / "good.jpg")
    source = DataSource(str(tmp_path), "csv", ["a"], [Sample(str(good), "a"), Sample(str(tmp_path / "gone.jpg"), "a")])
    report = audit(source, min_per_class=1)
    assert report.unusable == {str(tmp_path / "gone.jpg"): "unreadable"}
    assert report.usable(source.train) == [Sample(str(good), "a")]
    assert isinstance(report.findings[0], Finding) and report.by_code() == {"unreadable": 1}

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest

from ocula.data import DataSource, Sample, load_source, read_bytes
from ocula.errors import DataError, UsageError

from .conftest import class_folders, jpeg_bytes, save_image


def labels(samples: list[Sample]) -> list[str]:
    return [s.label for s in samples]


def names(samples: list[Sample]) -> list[str]:
    return sorted(Path(s.path).name for s in samples)


def test_class_folders_sorted_classes_any_extension_case(tmp_path: Path) -> None:
    class_folders(tmp_path, {"zebra": 2, "apple": 1})
    save_image(tmp_path / "apple" / "UPPER.JPG")
    save_image(tmp_path / "apple" / "nested" / "deep.png")
    (tmp_path / "apple" / "notes.txt").write_text("ignored")
    save_image(tmp_path / "apple" / ".hidden.jpg")
    save_image(tmp_path / ".git" / "x.jpg")
    save_image(tmp_path / "loose.jpg")  # no class folder: ignored
    (tmp_path / "empty").mkdir()

    source = load_source(tmp_path)

    assert source.format == "class_folders"
    assert source.classes == ["apple", "empty", "zebra"]
    assert source.val is None and source.test is None
    assert names([s for s in source.train if s.label == "apple"]) == ["UPPER.JPG", "apple_0.jpg", "deep.png"]
    assert labels(source.train).count("zebra") == 2
    assert all(Path(s.path).is_absolute() for s in source.train)
    assert list(source.splits()) == ["train"]


def test_split_folders_with_validation_alias_and_test(tmp_path: Path) -> None:
    class_folders(tmp_path / "train", {"a": 2, "b": 2})
    class_folders(tmp_path / "validation", {"a": 1, "b": 1}, seed=100)
    class_folders(tmp_path / "test", {"a": 1, "c": 1}, seed=200)

    source = load_source(str(tmp_path))

    assert source.format == "split_folders"
    assert source.classes == ["a", "b", "c"]
    assert len(source.train) == 4 and len(source.val or []) == 2 and len(source.test or []) == 2
    assert list(source.splits()) == ["train", "val", "test"]


def test_lst_file_labels_are_ids_relative_to_its_folder(tmp_path: Path) -> None:
    save_image(tmp_path / "images" / "a.jpg")
    save_image(tmp_path / "images" / "b.jpg", seed=1)
    save_image(tmp_path / "images" / "c.jpg", seed=2)
    (tmp_path / "data.lst").write_text("0\t1.000000\timages/a.jpg\n1\t0\timages/b.jpg\n\n2\t10\timages/c.jpg\n")

    source = load_source(tmp_path / "data.lst")

    assert source.format == "lst"
    assert source.classes == ["0", "1", "10"]  # numeric order: "10" after "1"
    assert source.train[0] == Sample(str(tmp_path / "images" / "a.jpg"), "1")
    assert read_bytes(source.train[0].path)[:2] == b"\xff\xd8"


def test_lst_directory_with_label_map(tmp_path: Path) -> None:
    save_image(tmp_path / "x.jpg")
    save_image(tmp_path / "y.jpg", seed=1)
    (tmp_path / "train.lst").write_text("0\t0\tx.jpg\n1\t1\ty.jpg\n")
    (tmp_path / "validation.lst").write_text("0\t1\ty.jpg\n")
    (tmp_path / "classes.csv").write_text("id,name\n0,cat\n1,dog\n2,bird\n")

    source = load_source(tmp_path)

    assert source.format == "lst"
    assert source.classes == ["cat", "dog", "bird"]
    assert labels(source.train) == ["cat", "dog"]
    assert labels(source.val or []) == ["dog"]


def test_sagemaker_channel_folders(tmp_path: Path) -> None:
    class_folders(tmp_path / "train", {"cat": 1, "dog": 1})
    class_folders(tmp_path / "validation", {"dog": 1}, seed=9)
    (tmp_path / "train_lst").mkdir()
    (tmp_path / "train_lst" / "train.lst").write_text("0\t0\tcat/cat_0.jpg\n1\t1\tdog/dog_0.jpg\n")
    (tmp_path / "validation_lst").mkdir()
    (tmp_path / "validation_lst" / "v.lst").write_text("0\t1\tdog/dog_0.jpg\n")

    source = load_source(tmp_path)

    assert source.format == "lst" and source.classes == ["0", "1"]
    assert source.train[0] == Sample(str(tmp_path / "train" / "cat" / "cat_0.jpg"), "0")
    assert source.val == [Sample(str(tmp_path / "validation" / "dog" / "dog_0.jpg"), "1")]


def test_lst_bad_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "data.lst").write_text("0\t0\ta.jpg\n1\tb.jpg\n")
    with pytest.raises(DataError, match=r"data\.lst:2: cannot parse"):
        load_source(tmp_path / "data.lst")


def test_csv_manifest_relative_absolute_and_split_column(tmp_path: Path) -> None:
    save_image(tmp_path / "imgs" / "a.jpg")
    elsewhere = save_image(tmp_path / "other" / "b.png", seed=1)
    manifest = tmp_path / "labels.csv"
    manifest.write_text(f"path,label,split\nimgs/a.jpg,cat,train\n{elsewhere},dog,validation\ns3://bucket/c.jpg,dog,train\n")

    source = load_source(manifest)

    assert source.format == "csv"
    assert source.classes == ["cat", "dog"]
    assert source.train == [Sample(str(tmp_path / "imgs" / "a.jpg"), "cat"), Sample("s3://bucket/c.jpg", "dog")]
    assert source.val == [Sample(str(elsewhere), "dog")]


def test_csv_without_split_column_is_all_train(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("\ufeffpath,label\na.jpg,1\nb.jpg,2\n")  # spreadsheet BOM
    source = load_source(tmp_path / "m.csv")
    assert source.val is None
    assert labels(source.train) == ["1", "2"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("file,kind\na.jpg,cat\n", "no label column"),
        ("path,label\na.jpg,cat\nb.jpg\n", r"m\.csv:3: cannot parse"),
        ("path,label,split\na.jpg,cat,holdout\n", r"m\.csv:2: unknown split 'holdout'"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DataError, match=match):
        load_source(tmp_path / "m.csv")


def test_jsonl_source_ref_and_ground_truth_label_key(tmp_path: Path) -> None:
    lines = [
        {"source-ref": "s3://bucket/a.jpg", "my-labeling-job": 1, "my-labeling-job-metadata": {"class-name": "dog"}},
        {"source-ref": "s3://bucket/b.jpg", "my-labeling-job": 0, "my-labeling-job-metadata": {"class-name": "cat"}},
        {"source-ref": "local/c.jpg", "my-labeling-job": 1, "my-labeling-job-metadata": {"class-name": "dog"}},
    ]
    (tmp_path / "train.manifest").write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    source = load_source(tmp_path / "train.manifest")

    assert source.format == "jsonl"
    assert source.classes == ["cat", "dog"]  # in class-id order
    assert source.train[0] == Sample("s3://bucket/a.jpg", "dog")
    assert source.train[2].path == str(tmp_path / "local" / "c.jpg")


def test_jsonl_path_key_with_plain_label(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text('{"path": "a.jpg", "label": "cat"}\n{"path": "b.jpg", "label": 3}\n')
    source = load_source(tmp_path / "m.jsonl")
    assert labels(source.train) == ["cat", "3"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"path": "a.jpg", "label": "cat"}\n{"path": "b.jpg", "label":\n', r"m\.jsonl:2: not valid JSON"),
        ('{"path": "a.jpg", "job-a": 1, "job-b": 2}\n', r"m\.jsonl:1: cannot tell the label key"),
        ('{"label": "cat"}\n', r"m\.jsonl:1: no image key"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "m.jsonl").write_text(text)
    with pytest.raises(DataError, match=match):
        load_source(tmp_path / "m.jsonl")


def id_manifest(root: Path) -> Path:
    """The grocery-style layout: train.txt/val.txt of 'path, fine_id, coarse_id' plus a
    classes.csv, next to train/<group>/<class>/ folders that must not win."""
    for i, (group, fine) in enumerate([("Apple", "Granny"), ("Apple", "Gala"), ("Milk", "Oat")]):
        save_image(root / "train" / group / fine / f"{fine}_1.jpg", seed=i)
        save_image(root / "val" / group / fine / f"{fine}_2.jpg", seed=10 + i)
    (root / "classes.csv").write_text(
        "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str)\n"
        "Granny,0,Apple,0,/x.jpg\nGala,1,Apple,0,/y.jpg\nOat,2,Milk,1,/z.jpg\n"
    )
    (root / "train.txt").write_text(
        "train/Apple/Granny/Granny_1.jpg, 0, 0\ntrain/Apple/Gala/Gala_1.jpg, 1, 0\ntrain/Milk/Oat/Oat_1.jpg, 2, 1\n"
    )
    (root / "val.txt").write_text("val/Milk/Oat/Oat_2.jpg, 2, 1\n")
    return root


def test_id_manifest_fine_labels_win_over_train_folder(tmp_path: Path) -> None:
    source = load_source(id_manifest(tmp_path))
    assert source.format == "id_manifest"
    assert source.classes == ["Granny", "Gala", "Oat"]  # class-id order, not alphabetical
    assert labels(source.train) == ["Granny", "Gala", "Oat"]
    assert source.val == [Sample(str(tmp_path / "val" / "Milk" / "Oat" / "Oat_2.jpg"), "Oat")]
    assert source.test is None


def test_id_manifest_coarse_level(tmp_path: Path) -> None:
    source = load_source(id_manifest(tmp_path), label_level="coarse")
    assert source.classes == ["Apple", "Milk"]
    assert labels(source.train) == ["Apple", "Apple", "Milk"]


def test_id_manifest_errors(tmp_path: Path) -> None:
    root = id_manifest(tmp_path)
    with pytest.raises(UsageError, match="unknown label level 'medium'"):
        load_source(root, label_level="medium")
    (root / "val.txt").write_text("val/Milk/Oat/Oat_2.jpg, 7, 1\n")
    with pytest.raises(DataError, match=r"val\.txt:1: fine class id 7 is not in classes\.csv"):
        load_source(root)
    (root / "val.txt").write_text("val/Milk/Oat/Oat_2.jpg; 2; 1\n")
    with pytest.raises(DataError, match=r"val\.txt:1: cannot parse"):
        load_source(root)


def test_coarse_level_needs_the_id_manifest(tmp_path: Path) -> None:
    class_folders(tmp_path, {"a": 1})
    with pytest.raises(UsageError, match="label_level='coarse' needs"):
        load_source(tmp_path, label_level="coarse")


def test_missing_path_and_empty_folder_and_unknown_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_source(tmp_path / "nope")
    with pytest.raises(DataError, match=r"no images found in .*no train/ folder.*\(ocula accepts a folder of class folders"):
        load_source(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"is a \.txt file, not a dataset"):
        load_source(tmp_path / "notes.txt")


def test_fsspec_urls_round_trip(tmp_path: Path) -> None:
    """Any fsspec filesystem works; memory:// stands in for s3:// here."""
    fs = fsspec.filesystem("memory")
    for label, seed in (("cat", 0), ("dog", 1)):
        fs.pipe(f"/ocula-test/{label}/{label}.jpg", jpeg_bytes(seed))
    try:
        source = load_source("memory://ocula-test")
        assert isinstance(source, DataSource)
        assert source.classes == ["cat", "dog"]
        path = source.train[0].path
        assert path.startswith("memory://") and path.endswith("ocula-test/cat/cat.jpg")
        assert read_bytes(source.train[0].path)[:2] == b"\xff\xd8"
    finally:
        fs.rm("/ocula-test", recursive=True)

"""Multi-label manifests: SageMaker's multi-label .lst, CSV cells with several labels, Ground Truth's
multi-label JSON Lines. Unusable rows are listed (file and line) and left out; the rest are read."""

from __future__ import annotations

import json
from pathlib import Path

from ocula.data import load_source
from ocula.data.dataset import Sample


def test_multi_label_lst_with_a_label_map_and_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "classes.csv").write_text("0,milk\n1,bread\n2,eggs\n")
    (tmp_path / "train.lst").write_text(
        "0\t1\t1\t0\timg/a.jpg\n"
        "1\t0\t0\t1\timg/b.jpg\n"
        "2\t1\t0\timg/c.jpg\n"          # one column short
        "3\t0\t0\t0\timg/d.jpg\n"       # no label at all
        "4\t0\t1\t0\timg/e.jpg\n")
    source = load_source(tmp_path / "train.lst")
    assert source.multi_label and source.classes == ["milk", "bread", "eggs"]
    assert [s.names for s in source.train] == [("milk", "bread"), ("eggs",), ("bread",)]
    assert source.train[0] == Sample.multi(str(tmp_path / "img" / "a.jpg"), ["milk", "bread"])
    assert len(source.problems) == 2
    assert "train.lst:3" in source.problems[0] and "2 label columns where the first row has 3" in source.problems[0]
    assert "train.lst:4" in source.problems[1] and "no label" in source.problems[1]


def test_multi_label_csv_cells_and_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,label\na.jpg,milk|bread\nb.jpg,eggs\nc.jpg,\nd.jpg, bread | eggs \n")
    source = load_source(tmp_path / "labels.csv")
    assert source.multi_label and source.classes == ["bread", "eggs", "milk"]
    assert [s.names for s in source.train] == [("milk", "bread"), ("eggs",), ("bread", "eggs")]
    assert source.train[0].label == "milk|bread"
    assert source.problems == [f"{tmp_path / 'labels.csv'}:4: c.jpg has no label; row left out"]


def test_ground_truth_multi_label_json_lines(tmp_path: Path) -> None:
    meta = {"class-map": {"0": "milk", "1": "bread"}, "type": "groundtruth/image-classification-multilabel"}
    lines = [{"source-ref": "a.jpg", "shelf": [0, 1], "shelf-metadata": meta},
             {"source-ref": "b.jpg", "shelf": [1], "shelf-metadata": meta},
             {"source-ref": "c.jpg", "shelf": [7], "shelf-metadata": meta},   # an id the class-map lacks
             {"source-ref": "d.jpg", "shelf": [], "shelf-metadata": meta}]
    (tmp_path / "output.manifest.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    source = load_source(tmp_path / "output.manifest.jsonl")
    assert source.multi_label and sorted(source.classes) == ["bread", "milk"]
    assert [s.names for s in source.train] == [("milk", "bread"), ("bread",)]
    assert len(source.problems) == 2 and ":3: label id 7 is not in the class-map" in source.problems[0]


def test_single_label_data_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("path,label\na.jpg,milk\nb.jpg,bread\n")
    source = load_source(tmp_path / "labels.csv")
    assert not source.multi_label and not source.problems
    assert source.train[0] == Sample(str(tmp_path / "a.jpg"), "milk") and source.train[0].names == ("milk",)


def test_data_check_audits_a_multi_label_set(tmp_path: Path) -> None:
    from PIL import Image

    from tests.conftest import run_cli

    rows = ["path,label,split"]
    for i in range(6):
        for split in ("train", "val"):
            name = f"{split}_{i}.png"
            Image.new("RGB", (40, 40), (i * 30, 80, 200 - i * 20)).save(tmp_path / name)
            labels = "milk|bread" if i % 2 else "eggs"
            if split == "val" and i == 5:
                labels = "milk|butter"  # butter is never in training
            rows.append(f"{name},{labels},{split}")
    rows.append("missing.png,,train")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "audit.json"
    result = run_cli("data", "check", str(tmp_path / "labels.csv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["counts"]["train"] == {"bread": 3, "butter": 0, "eggs": 3, "milk": 3}
    assert report["labels"]["train"]["mean_labels_per_image"] == 1.5
    assert report["labels"]["train"]["top_pairs"] == [["bread", "milk", 3]]
    codes = {f["code"]: f for f in report["findings"]}
    assert "butter" in codes["label_never_trained"]["message"]
    assert "labels.csv:14" in codes["row_left_out"]["message"]
    assert "1.50 labels per image" in result.stdout and "bread+milk (3)" in result.stdout


def test_a_multi_label_lst_row_naming_an_id_the_label_map_lacks_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("milk\nbread\neggs\n")  # ids 0-2; the .lst has a fourth column
    (tmp_path / "train.lst").write_text("0\t1\t0\t0\t0\ta.jpg\n1\t0\t1\t0\t1\tb.jpg\n2\t0\t0\t1\t0\tc.jpg\n")
    source = load_source(tmp_path / "train.lst")
    assert source.classes == ["milk", "bread", "eggs"]
    assert [s.names for s in source.train] == [("milk",), ("eggs",)]
    assert source.problems == [f"{tmp_path / 'b.jpg'}: label id(s) 3 are not in the label map; left out"]

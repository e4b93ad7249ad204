from ocula.storage import RunDir, RunIndex, write_json, read_json


def test_index_records_updates_and_finds_by_prefix(tmp_path):
    index = RunIndex(tmp_path)
    index.record("20261122-000000-aaaa", path="/r/a", model="m", mode="head")
    index.record("20261122-000001-bbbb", path="/r/b", model="m", mode="full")
    index.record("20261122-000000-aaaa", status="completed", val_accuracy=0.9)
    rows = RunIndex(tmp_path).list()  # a second connection sees the same file
    assert [r["id"] for r in rows] == ["20261122-000001-bbbb", "20261122-000000-aaaa"]
    assert index.get("20261122-000000")["val_accuracy"] == 0.9
    assert index.get("20261122") is None  # ambiguous prefix
    assert (tmp_path / "index.sqlite").exists()


def test_run_dir_layout_and_atomic_json(tmp_path):
    run = RunDir(tmp_path / "r").create()
    assert run.model_dir.is_dir() and run.checkpoint.parent.is_dir()
    write_json(run.metrics, {"best": {"epoch": 1}})
    assert read_json(run.metrics) == {"best": {"epoch": 1}}
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []

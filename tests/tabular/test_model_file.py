"""A tabular model file is untrusted input: only the exact types ocula's own pipelines hold load.

The crafted file below is the attack that worked against a prefix allow-list: a
FunctionTransformer chain iter -> next -> exec in front of the model runs the first column's
name as Python on the first request. Its payload only creates a marker file.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ocula.errors import ModelError
from ocula.tabular import pipeline
from ocula.tabular.candidates import CANDIDATES
from ocula.tabular.job import TabularRun
from ocula.tabular.model import ALLOWED_LOADERS, ALLOWED_TYPES, MODEL_FILE, TabularModel, stored_types
from tests.conftest import run_cli
from tests.serve.test_server import free_port


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=rows), "c": rng.choice(list("xyz"), rows),
                         "h": [f"level{i % 30}" for i in range(rows)],
                         "d": pd.date_range("2020-01-01", periods=rows).astype(str),
                         "t": [f"word{i % 5} other{i % 7} text" for i in range(rows)]})


def test_the_allow_list_is_exactly_what_ocula_stores(tmp_path):
    """Every candidate on every column kind and problem kind: nothing stored outside the lists,
    and nothing in the lists that ocula never stores (the smallest set)."""
    frame, rng = _frame(), np.random.default_rng(1)
    spec_columns = {"a": "numeric", "c": "categorical", "h": "categorical", "d": "datetime", "t": "text"}
    targets = {"binary": rng.integers(0, 2, len(frame)), "multiclass": rng.integers(0, 3, len(frame)),
               "regression": rng.normal(size=len(frame))}
    seen, missing_libraries = set(), set()
    for kind, y in targets.items():
        spec = {"kind": kind, "columns": spec_columns, "levels": {"c": 3, "h": 30}}
        for candidate in CANDIDATES:
            if not candidate.available():
                missing_libraries.add(candidate.classifier.split(".")[0])
                continue
            fitted = pipeline.build(candidate.member(kind, {}, threads=1, seed=0), spec).fit(frame, y)
            folder = tmp_path / f"{kind}-{candidate.name}"
            TabularModel([fitted], [1.0], {"problem": {"kind": kind, "labels": []}, "schema": {}}).save(folder)
            seen |= stored_types(folder / MODEL_FILE)
    names, loaders = {name for name, _ in seen}, {loader for _, loader in seen}
    assert names <= ALLOWED_TYPES, names - ALLOWED_TYPES
    assert loaders <= ALLOWED_LOADERS, loaders - ALLOWED_LOADERS
    unused = {t for t in ALLOWED_TYPES - names if t.split(".")[0] not in missing_libraries}
    assert not unused, f"allowed but never stored: {sorted(unused)}"


@pytest.fixture
def crafted_run(tmp_path):
    """An automl-shaped run folder whose model would run code named by its first column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    marker = tmp_path / "pwned"
    column = f"open({str(marker)!r}, 'w').close()"
    steps = [(f.__name__, FunctionTransformer(f).fit(None)) for f in (iter, next, exec)]
    chain = Pipeline([*steps, ("model", LogisticRegression().fit([[0], [1]], [0, 1]))])
    card = {"type": "tabular", "best": "lightgbm", "input_columns": [column],
            "problem": {"kind": "binary", "labels": ["no", "yes"], "target": "y"},
            "schema": {column: {"kind": "categorical"}}}
    run = tmp_path / "run"
    TabularModel([chain], [1.0], card).save(run / "model")
    rows = pd.DataFrame({column: ["a", "b"]})
    return run, marker, rows


def test_the_crafted_file_is_a_real_attack_when_trusted(crafted_run):
    """What skops would do if every stored type were trusted (the old prefix rule let these pass)."""
    import skops.io as sio

    run, marker, rows = crafted_run
    path = run / "model" / MODEL_FILE
    stored = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    with pytest.raises(Exception):  # noqa: B017 - the model breaks after the payload has run
        pipeline.predict(stored["members"][0], rows, "binary", 2)
    assert marker.exists()


def test_the_python_api_refuses_it_at_load_naming_the_types(crafted_run):
    run, marker, rows = crafted_run
    with pytest.raises(ModelError, match=r"refused: .*builtins\.exec.*builtins\.iter.*builtins\.next"):
        TabularModel.load(run / "model")
    with pytest.raises(ModelError, match="refused"):
        TabularRun.open(run).predict(rows)
    assert not marker.exists()


def test_a_function_under_an_allowed_name_is_refused_too(crafted_run):
    """The loader counts: ``builtins.str`` is allowed as a type, not as a function for skops to
    resolve (FunctionNode), whatever the estimator around it is called."""
    import zipfile

    run, _, _ = crafted_run
    path = run / "model" / MODEL_FILE
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}

    def disguise(node):
        if isinstance(node, dict):
            if node.get("__class__") in ("iter", "next", "exec"):
                node.update({"__class__": "str", "__loader__": "FunctionNode"})
            if node.get("__class__") == "FunctionTransformer":
                node.update({"__class__": "StandardScaler", "__module__": "sklearn.preprocessing._data"})
            for value in node.values():
                disguise(value)
        elif isinstance(node, list):
            for value in node:
                disguise(value)

    schema = json.loads(files["schema.json"])
    disguise(schema)
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError, match=r"refused: .*builtins\.str as FunctionNode"):
        TabularModel.load(run / "model")


@pytest.mark.slow
def test_serve_and_batch_refuse_it_in_one_line_and_run_nothing(crafted_run, tmp_path):
    run, marker, rows = crafted_run
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "rows.csv").write_text(f"{rows.columns[0]},other\na,1\nb,2\n")
    served = run_cli("serve", str(run), "--port", str(free_port()), timeout=120)
    scored = run_cli("batch", str(run), str(tmp_path / "rows.csv"), "--out", str(tmp_path / "out.jsonl"))
    for result in (served, scored):
        assert result.returncode == 2, result.stderr
        assert "refused" in result.stderr and "builtins.exec" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert not (tmp_path / "out.jsonl").exists()


def test_a_damaged_file_or_card_is_one_line(tmp_path):
    frame, spec = _frame()[["a", "c"]], {"kind": "binary", "columns": {"a": "numeric", "c": "categorical"}}
    fitted = pipeline.build(CANDIDATES[2].member("binary", {}, threads=1, seed=0), spec).fit(frame, frame.a > 0)
    model_dir = tmp_path / "model"
    TabularModel([fitted], [1.0], {"problem": {"kind": "binary", "labels": ["no", "yes"]}, "schema": {}}).save(model_dir)
    TabularModel.load(model_dir)  # its own file loads
    (model_dir / "card.json").write_text(json.dumps({"type": "tabular"}))
    with pytest.raises(ModelError, match="lacks 'problem'"):
        TabularModel.load(model_dir)
    (model_dir / MODEL_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelError, match="cannot load the tabular model"):
        TabularModel.load(model_dir)

"""A tabular run served by the real `ocula serve`: CSV and JSON rows in, Autopilot's keys out,
schema errors named by column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ocula.tabular import automl
from ocula.tabular.model import TabularModel
from tests.serve.test_server import Server
from tests.tabular.conftest import messy_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tabular")
    frame = messy_frame()
    frame.to_csv(root / "churn.csv", index=False)
    result = automl(str(root / "churn.csv"), target="churned", budget="20s", models=["lightgbm", "linear"],
                    out=str(root / "run"), runs_root=str(root / "runs"), quiet=True)
    return result.path, frame


@pytest.fixture(scope="module")
def server(run):
    server = Server(str(run[0]))
    yield server
    server.stop()


def test_csv_rows_get_autopilots_keys_equal_to_the_model_in_process(run, server):
    path, frame = run
    rows = frame.drop(columns=["churned"]).head(5)
    expected = TabularModel.load(path / "model").answers(rows)
    # headerless CSV, every column of the training table but the target, in order (as Autopilot takes it)
    body = rows.to_csv(index=False, header=False).encode()
    status, _, answer = server.invoke(body, "text/csv")
    assert status == 200, answer
    got = answer["predictions"]
    assert [a["predicted_label"] for a in got] == [e["predicted_label"] for e in expected]
    assert set(got[0]) == {"predicted_label", "probability", "probabilities", "labels"}
    assert got[0]["labels"] == ["no", "yes"]
    assert np.allclose([a["probabilities"] for a in got], [e["probabilities"] for e in expected], atol=1e-9)
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-6 for a in got)
    # with a header, columns by name in any order; the left-out columns may be missing
    header = rows[["plan", "income", "tenure"]].to_csv(index=False).encode()
    status, _, answer = server.invoke(header, "text/csv")
    assert status == 200 and [a["predicted_label"] for a in answer["predictions"]] == [e["predicted_label"] for e in expected]


def test_json_records_one_or_many(run, server):
    path, frame = run
    records = json.loads(frame.drop(columns=["churned"]).head(3).to_json(orient="records"))
    expected = TabularModel.load(path / "model").answers(frame.drop(columns=["churned"]).head(3))
    status, _, one = server.invoke(json.dumps(records[0]).encode(), "application/json")
    assert status == 200 and one["predicted_label"] == expected[0]["predicted_label"]
    status, _, many = server.invoke(json.dumps({"instances": records}).encode(), "application/json")
    assert status == 200 and [a["predicted_label"] for a in many["predictions"]] == [e["predicted_label"] for e in expected]
    status, _, listed = server.invoke(json.dumps(records).encode(), "application/json")
    assert status == 200 and len(listed["predictions"]) == 3
    # a missing value is imputed as in training, not an error
    status, _, answer = server.invoke(json.dumps({**records[0], "income": None}).encode(), "application/json")
    assert status == 200 and answer["predicted_label"] in ("no", "yes")


@pytest.mark.parametrize(("body", "content_type", "status", "code", "column"), [
    (b'{"plan": "basic", "tenure": 3}', "application/json", 400, "schema_error", "income"),
    (b'{"plan": "basic", "tenure": "three", "income": 40}', "application/json", 400, "schema_error", "tenure"),
    (b"plan,tenure\nbasic,3\n", "text/csv", 400, "schema_error", "income"),
    (b"1,2\n", "text/csv", 400, "schema_error", None),
    (b"plan,tenure,income\nbasic,3\n", "text/csv", 400, "schema_error", None),
    (b"{not json", "application/json", 400, "invalid_json", None),
    (b"[1, 2]", "application/json", 400, "invalid_json", None),
    (b"", "text/csv", 400, "empty_body", None),
    (b"a", "text/plain", 415, "unsupported_media_type", None),
])
def test_bad_rows_get_a_4xx_json_error_that_names_the_column(server, body, content_type, status, code, column):
    got, _, answer = server.invoke(body, content_type)
    assert got == status and answer["error"] == code and answer["message"]
    if column:
        assert answer["column"] == column and repr(column) in answer["message"]
    ok, _, _ = server.invoke(b'{"plan": "basic", "tenure": 3, "income": 40}', "application/json")
    assert ok == 200  # and it goes on serving


def test_ping_names_the_model(server):
    status, _, body = server.request("GET", "/ping")
    assert status == 200 and "target 'churned'" in json.loads(body)["model"]

"""A tabular run served by the real `ocula serve`: CSV and JSON rows in, Autopilot's keys out,
schema errors named by column."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ocula import automl
from ocula.tabular.model import TabularModel
from tests.conftest import run_cli
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
    (b"[" * 200_000 + b"]" * 200_000, "application/json", 400, "invalid_json", None),
    (b'{"instances": [{"plan": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", "application/json", 400, "invalid_json", None),
    (b'{"plan": {"a": [1]}, "tenure": 3, "income": 40}', "application/json", 400, "schema_error", "plan"),
    (b'{"plan": "basic", "tenure": Infinity, "income": 40}', "application/json", 400, "schema_error", "tenure"),
    (b'{"plan": "basic", "tenure": -Infinity, "income": 40}', "application/json", 400, "schema_error", "tenure"),
    (b'{"plan": "basic", "tenure": 1e400, "income": 40}', "application/json", 400, "schema_error", "tenure"),
    (b'{"plan": "basic", "tenure": 3, "income": ' + b"9" * 400 + b"}", "application/json", 400, "schema_error",
     "income"),
    (b'{"plan": "basic", "tenure": 3, "income": ' + b"9" * 5000 + b"}", "application/json", 400, "invalid_json",
     None),
    (b"plan,tenure,income\nbasic,inf,40\n", "text/csv", 400, "schema_error", "tenure"),
    (b"plan,tenure,income\nbasic,-inf,40\n", "text/csv", 400, "schema_error", "tenure"),
    (b"plan,tenure,income\nbasic,3,1e400\n", "text/csv", 400, "schema_error", "income"),
    (b"plan,tenure,income\nbasic,3," + b"9" * 400 + b"\n", "text/csv", 400, "schema_error", "income"),
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


def test_refused_rows_are_counted_and_nothing_is_a_500(server):
    def count(status: str) -> float:
        text = server.request("GET", "/metrics")[2].decode()
        found = re.search(r'^ocula_requests_total\{path="/invocations",status="' + status + r'"\} (\S+)$', text, re.M)
        return float(found[1]) if found else 0.0

    before = count("400")
    for body in (b"[" * 200_000 + b"]" * 200_000, b'{"plan": "basic", "tenure": Infinity, "income": 40}'):
        assert server.invoke(body, "application/json")[0] == 400
    assert count("400") == before + 2 and count("500") == 0


def test_ocula_batch_scores_a_table_row_by_row_and_continues(run, tmp_path):
    path, frame = run
    rows = frame.drop(columns=["churned"]).head(30).copy()
    rows["tenure"] = rows["tenure"].astype(object)
    rows.loc[rows.index[7], "tenure"] = "seven"  # one bad row: listed, not fatal
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "preds.jsonl"
    result = run_cli("batch", str(path), str(tmp_path / "rows.csv"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    assert "bad rows: 1" in result.stdout and "row 7" in result.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["row"] for line in lines] == [i for i in range(30) if i != 7]
    good = rows.drop(index=rows.index[7])
    expected = TabularModel.load(path / "model").answers(good.astype({"tenure": float}))
    assert [line["predicted_label"] for line in lines] == [e["predicted_label"] for e in expected]
    errors = [json.loads(line) for line in (tmp_path / "preds.errors.jsonl").read_text().splitlines()]
    assert errors == [{"row": 7, "reason": "schema_error", "column": "tenure", "detail": errors[0]["detail"]}]
    again = run_cli("batch", str(path), str(tmp_path / "rows.csv"), "--out", str(out))
    assert "already done: 29" in again.stdout and "written: 0" in again.stdout


@pytest.mark.parametrize("option", [["--tta"], ["--min-confidence", "0.5"]])
def test_image_only_options_on_a_table_run_exit_2_with_one_line(run, tmp_path, option):
    path, frame = run
    frame.drop(columns=["churned"]).head(3).to_csv(tmp_path / "rows.csv", index=False)
    result = run_cli("batch", str(path), str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p.jsonl"), *option)
    assert result.returncode == 2
    assert f"{option[0]} applies to image runs" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p.jsonl").exists()

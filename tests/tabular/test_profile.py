"""The data report finds what is wrong with a table, and leaves the right columns out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ocula.errors import ConfigError, DataError
from ocula.tabular.profile import profile
from ocula.tabular.table import infer_problem, read_table
from tests.tabular.conftest import messy_frame


def test_the_report_flags_the_id_the_leak_the_constant_and_the_missing_values_and_leaves_out_id_and_leak():
    frame = messy_frame()
    report = profile(frame, infer_problem(frame, "churned"))
    flagged = {(w["column"], w["severity"]): w["message"] for w in report["warnings"]}
    assert "id-like" in flagged[("customer_id", "medium")]
    assert "leakage" in flagged[("refund_flag", "high")]
    assert "constant" in flagged[("region_code", "low")]
    assert "missing" in flagged[("income", "medium")] and "missing" in flagged[("tenure", "medium")]
    assert "duplicate of column 'plan'" in flagged[("plan_copy", "low")]
    assert report["column_report"]["income"]["missing"] == pytest.approx(0.3)
    # left out, each with its reason; the useful columns stay, with their kinds
    assert set(report["excluded"]) == {"customer_id", "refund_flag", "region_code", "plan_copy"}
    assert "id-like" in report["excluded"]["customer_id"] and "leakage" in report["excluded"]["refund_flag"]
    assert report["features"] == {"tenure": "numeric", "plan": "categorical", "income": "numeric"}
    # the strongest warnings come first
    assert report["warnings"][0]["severity"] == "high"


def test_keep_uses_a_flagged_column_and_the_flag_stays():
    frame = messy_frame()
    report = profile(frame, infer_problem(frame, "churned"), keep=("customer_id",))
    assert "customer_id" in report["features"] and "customer_id" not in report["excluded"]
    assert any(w["column"] == "customer_id" for w in report["warnings"])


def test_duplicate_rows_dates_and_text_are_recognised():
    rng = np.random.default_rng(1)
    n = 200
    frame = pd.DataFrame({
        "signup": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "review": [f"the product was {'great' if i % 2 else 'poor'} and arrived {'late' if i % 3 else 'early'} "
                   f"number {i}" for i in range(n)],
        "x": rng.normal(size=n), "y": rng.integers(0, 3, n)})
    frame = pd.concat([frame, frame.iloc[:10]], ignore_index=True)
    report = profile(frame, infer_problem(frame, "y"))
    assert report["features"]["signup"] == "datetime" and report["features"]["review"] == "text"
    assert report["duplicate_rows"] == 10
    assert report["problem"]["kind"] == "multiclass" and "integers with 3 distinct values" in report["problem"]["evidence"]


@pytest.mark.parametrize(("values", "kind"), [
    (["a", "b"] * 20, "binary"), ([0, 1] * 20, "binary"), (list("abcd") * 10, "multiclass"),
    (list(range(5)) * 8, "multiclass"), (list(np.linspace(0, 1, 40)), "regression"), (list(range(40)), "regression"),
])
def test_the_problem_type_is_inferred_with_its_evidence(values, kind):
    frame = pd.DataFrame({"x": range(len(values)), "y": values})
    problem = infer_problem(frame, "y")
    assert problem.kind == kind and problem.evidence
    assert problem.metric == {"binary": "f1", "multiclass": "accuracy", "regression": "rmse"}[kind]


def test_binary_labels_put_the_minority_class_second_as_the_positive_class():
    frame = pd.DataFrame({"x": range(30), "y": ["no"] * 20 + ["yes"] * 10})
    assert infer_problem(frame, "y").labels == ["no", "yes"]
    frame["y"] = ["yes"] * 20 + ["no"] * 10
    assert infer_problem(frame, "y").labels == ["yes", "no"]


def test_wrong_metric_type_or_target_are_one_line_errors():
    frame = pd.DataFrame({"x": range(30), "y": ["a", "b", "c"] * 10})
    with pytest.raises(ConfigError, match="rmse does not apply to a multiclass"):
        infer_problem(frame, "y", metric="rmse")
    with pytest.raises(ConfigError, match="unknown metric"):
        infer_problem(frame, "y", metric="acuracy")
    with pytest.raises(ConfigError, match="not numeric"):
        infer_problem(frame, "y", kind="regression")
    with pytest.raises(DataError, match="unknown target column 'Y'"):
        infer_problem(frame, "Y")


def test_semicolon_tables_are_read(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;c\n1;x;2.5\n2;y;3.5\n")
    assert list(read_table(path).columns) == ["a", "b", "c"]

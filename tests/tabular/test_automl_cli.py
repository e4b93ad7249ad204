"""``ocula automl`` end to end: bad input in one line, a real run, and its script in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(("content", "args", "message"), [
    ("a,b\n1,2\n3,4\n", ("--target", "c"), "unknown target column 'c'"),
    ("a,b\n1,7\n2,7\n3,7\n", ("--target", "b"), "target 'b' has a single value (7)"),
    ("", ("--target", "b"), "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ("--target", "b"), "is not a table: it holds binary data"),
    ("just a sentence of prose\nand another line of it\n", ("--target", "b"), "is not a table of features"),
])
def test_bad_tables_are_one_line_errors_with_exit_code_2(tmp_path, content, args, message):
    path = tmp_path / "t.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = run_cli("automl", str(path), *args, "--out", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_and_an_unknown_model_are_one_line_errors(tmp_path, messy_csv):
    result = run_cli("automl", str(tmp_path / "nope.csv"), "--target", "y", timeout=120)
    assert result.returncode == 2 and "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    result = run_cli("automl", str(messy_csv), "--target", "churned", "--models", "lightgbn", timeout=120)
    assert result.returncode == 2 and "did you mean 'lightgbm'" in result.stderr


@pytest.mark.slow
def test_automl_run_leaves_out_id_and_leak_and_its_script_reproduces_the_score(tmp_path, messy_csv):
    run = tmp_path / "run"
    result = run_cli("automl", str(messy_csv), "--target", "churned", "--budget", "40s", "--models",
                     "lightgbm,linear,random_forest", "--out", str(run), "--runs-root", str(tmp_path / "runs"),
                     timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run)
    metrics = json.loads((run / "metrics.json").read_text())
    card = json.loads((run / "model" / "card.json").read_text())
    # id and leak are not features, and the reasons are in the run
    assert set(card["schema"]) == {"tenure", "plan", "income"}
    assert "id-like" in card["excluded"]["customer_id"] and "leakage" in card["excluded"]["refund_flag"]
    assert "left out 'refund_flag'" in (run / "log.txt").read_text()
    html = (run / "data_report.html").read_text()
    assert "refund_flag" in html and "customer_id" in html and "region_code" in html
    # a leaderboard of cross-validated models; every plot and page is there
    board = metrics["leaderboard"]
    assert {r["model"] for r in board} >= {"lightgbm", "linear", "random_forest"}
    assert all(0 <= r["f1"] <= 1 and r["std"] >= 0 for r in board)
    assert metrics["best"]["f1"] == max(r["f1"] for r in board)
    assert set(metrics["importance"]["permutation"]) == {"tenure", "plan", "income"}
    assert (run / "report.html").stat().st_size > 10_000 and (run / "plots" / "roc_pr.png").exists()
    # the script rebuilds the best model alone (no ocula import) and reproduces its CV score
    script = run / "candidate.py"
    assert "import ocula" not in script.read_text() and "from ocula" not in script.read_text()
    rebuilt = subprocess.run([sys.executable, "-I", str(script), str(messy_csv)], capture_output=True, text=True,
                             timeout=600, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    scored = json.loads(rebuilt.stdout.strip().splitlines()[-1])
    assert scored["metric"] == "f1"
    assert scored["score"] == pytest.approx(metrics["best"]["f1"], abs=0.01)

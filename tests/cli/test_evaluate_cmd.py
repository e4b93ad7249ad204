"""``ocula evaluate`` and ``ocula compare`` as a user runs them."""

from __future__ import annotations

import pytest

import ocula
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-eval")
    data = write_dataset(root / "data", per_class=10)
    runs = [ocula.train(data, mode="head", augment=augment, epochs=3, image_size=64, out=str(root / augment),
                        runs_root=str(root), quiet=True) for augment in ("none", "phone")]
    return root, data, runs


def test_evaluate_then_compare(two_runs, tmp_path):
    root, data, runs = two_runs
    for run in runs:
        result = run_cli("evaluate", str(run.path), str(data), "--split", "all", "--shift", "phone",
                         "--shift-images", "6")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1].endswith("report.html")
        assert "accuracy=" in result.stdout and "phone-photo shift" in result.stdout
        assert (run.path / "evaluations" / "all-phone" / "report.html").exists()
    result = run_cli("compare", *(str(r.path) for r in runs), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "comparison.md").read_text()
    assert "| none |" in table and "| phone |" in table and "mean drop" in table
    assert (tmp_path / "comparison.json").exists()


@pytest.mark.parametrize("args, message", [
    (["evaluate", "{run}", "{data}", "--split", "tset"], "unknown split 'tset'"),
    (["evaluate", "{run}", "{data}", "--shift", "fog"], "unknown shift 'fog'"),
    (["evaluate", "{root}/no-such-run", "{data}"], "does not exist"),
    (["evaluate", "{run}", "{root}/no-such-data"], "no-such-data"),
    (["evaluate", "{data}", "{data}"], "not a complete ocula run"),
    (["compare", "{root}/no-such-run"], "does not exist"),
])
def test_bad_arguments_are_one_line_and_exit_2(two_runs, args, message):
    root, data, runs = two_runs
    values = {"run": runs[0].path, "data": data, "root": root}
    result = run_cli(*[a.format(**values) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

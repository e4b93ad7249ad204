"""`ocula tune` over real training runs (small_cnn on generated images)."""

from __future__ import annotations

import json

import pytest

from ocula.inference import Predictor
from tests.conftest import run_cli, write_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("tune") / "data", per_class=10)


def test_a_grid_study_trains_each_combination_and_keeps_the_best_as_a_normal_run(data, tmp_path):
    (tmp_path / "space.yaml").write_text("lr: [0.001, 0.01]\nlabel_smoothing: [0.0, 0.1]\n")
    result = run_cli("tune", str(data), "--strategy", "grid", "--space", str(tmp_path / "space.yaml"),
                     "--model", "small_cnn", "--pretrained", "none", "--mode", "full", "--max-epochs", "2",
                     "--out", str(tmp_path / "study"), timeout=900)
    assert result.returncode == 0, result.stderr
    assert "done 4, running 0, pruned 0, failed 0, best" in result.stderr  # the progress line per trial
    board = json.loads((tmp_path / "study" / "leaderboard.json").read_text())
    trials = board["trials"]
    assert len(trials) == 4 and all(t["status"] == "complete" and t["epochs"] == 2 for t in trials)
    assert sorted((t["params"]["lr"], t["params"]["label_smoothing"]) for t in trials) == \
        [(0.001, 0.0), (0.001, 0.1), (0.01, 0.0), (0.01, 0.1)]
    best = max(trials, key=lambda t: t["validation:accuracy"])
    assert board["best_run"] == best["run"] == result.stdout.strip().splitlines()[-1]
    assert (tmp_path / "study" / "history.png").stat().st_size > 0
    predictor = Predictor.from_run(best["run"])  # what `ocula evaluate` and `ocula serve` load
    assert predictor.card.labels == ["circle", "square", "stripes"]
    # Re-running the finished study resumes it: nothing is trained again.
    again = run_cli("tune", str(data), "--strategy", "grid", "--space", str(tmp_path / "space.yaml"),
                    "--model", "small_cnn", "--pretrained", "none", "--mode", "full", "--max-epochs", "2",
                    "--out", str(tmp_path / "study"), timeout=900)
    assert again.returncode == 0 and len(json.loads((tmp_path / "study" / "leaderboard.json").read_text())["trials"]) == 4


@pytest.mark.parametrize("space, args, message", [
    ("learning_rate: [0.1, 0.2]\n", [], "unknown parameter in the search space: 'learning_rate'"),
    ("lr: {type: float, low: 0.1, high: 0.01}\n", [], "low 0.1 is above high 0.01"),
    ("lr: {type: float, low: 0, high: 0.1, log: true}\n", [], "log scale needs bounds above zero"),
    ("lr: [0.1]\n", ["--strategy", "annealing"], "unknown strategy 'annealing'"),
])
def test_bad_spaces_and_strategies_are_one_line_with_exit_2(data, tmp_path, space, args, message):
    (tmp_path / "space.yaml").write_text(space)
    result = run_cli("tune", str(data), "--space", str(tmp_path / "space.yaml"), "--trials", "2",
                     "--out", str(tmp_path / "study"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_wrong_data_path_fails_before_any_trial(tmp_path):
    result = run_cli("tune", str(tmp_path / "nope"), "--trials", "2", "--out", str(tmp_path / "study"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "study" / "trials").exists()


def test_under_a_budget_each_trial_trains_with_its_share_of_the_time_left(data, tmp_path):
    import yaml

    (tmp_path / "space.yaml").write_text("lr: [0.001, 0.01]\n")
    result = run_cli("tune", str(data), "--strategy", "grid", "--budget", "10m", "--trials", "2", "--space",
                     str(tmp_path / "space.yaml"), "--model", "small_cnn", "--pretrained", "none", "--mode", "full",
                     "--max-epochs", "2", "--out", str(tmp_path / "study"), timeout=900)
    assert result.returncode == 0, result.stderr
    configs = [yaml.safe_load((tmp_path / "study" / "trials" / f"{n:03d}" / "config.yaml").read_text()) for n in (0, 1)]
    assert all(c["epochs"] == 2 for c in configs)  # the epochs are a cap; the budget picks what fits
    assert 0 < configs[0]["budget_seconds"] <= 300  # 10 min / 2 trials, less a margin
    # the first trial took far less than its share: the second gets what is left of the study
    assert 300 < configs[1]["budget_seconds"] < 600

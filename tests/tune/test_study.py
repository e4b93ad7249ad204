"""The tuning layer on a cheap objective: strategies, exact trial counts, seeds, resume, errors."""

from __future__ import annotations

import functools

import optuna
import pytest

from ocula.errors import ConfigError
from ocula.tune import StudyConfig, counted, load_space, parse_space, run_study

SPACE = {"x": {"type": "float", "low": -3.0, "high": 3.0}, "n": {"type": "int", "low": 1, "high": 8, "log": True},
         "kind": ["a", "b"]}


def quadratic(trial, fail_on=None, interrupt_on=None):
    p = trial.params
    if fail_on is not None and trial.number == fail_on:
        raise RuntimeError("this trial's values break the model")
    if interrupt_on is not None and trial.number == interrupt_on:
        raise KeyboardInterrupt
    return -(p["x"] - 1) ** 2 - 0.1 * p["n"] + (0.5 if p["kind"] == "b" else 0.0)


def config(tmp_path, **options):
    return StudyConfig(name=options.pop("name", "s"), directory=tmp_path, **options)


def params_of(study):
    return [t.params for t in sorted(counted(study), key=lambda t: t.number)]


def test_a_2x3_grid_runs_exactly_6_trials_one_per_combination(tmp_path):
    space = parse_space({"lr": [0.01, 0.1], "depth": {"type": "int", "low": 1, "high": 3}})
    study = run_study(config(tmp_path, strategy="grid"), space, lambda t: t.params["lr"] * t.params["depth"])
    combos = sorted((t.params["lr"], t.params["depth"]) for t in counted(study))
    assert combos == [(lr, d) for lr in (0.01, 0.1) for d in (1, 2, 3)]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("strategy", ["random", "bayesian"])
def test_random_and_bayesian_repeat_exactly_under_a_seed(tmp_path, strategy):
    space = parse_space(SPACE)
    runs = [run_study(config(tmp_path / str(i), strategy=strategy, trials=14, seed=7), space, quadratic)
            for i in range(3)]
    assert params_of(runs[0]) == params_of(runs[1]) and len(params_of(runs[0])) == 14
    other = run_study(config(tmp_path / "other", strategy=strategy, trials=14, seed=8), space, quadratic)
    assert params_of(other) != params_of(runs[0])
    if strategy == "bayesian":  # TPE uses what it saw: the best is near x = 1, kind = b
        assert runs[0].best_value > -1.0


def test_an_interrupted_study_resumes_without_rerunning_finished_trials(tmp_path):
    space = parse_space(SPACE)
    calls = []

    def counting(trial, interrupt_on=None):
        calls.append(trial.number)
        return quadratic(trial, interrupt_on=interrupt_on)

    with pytest.raises(KeyboardInterrupt):
        run_study(config(tmp_path, strategy="random", trials=6), space, functools.partial(counting, interrupt_on=3))
    finished = {t.number: t.params for t in counted(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/study.db"))
                if t.state == optuna.trial.TrialState.COMPLETE}
    assert sorted(finished) == [0, 1, 2]
    interrupted_params = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/study.db").trials[3].params
    calls.clear()
    study = run_study(config(tmp_path, strategy="random", trials=6), space, counting)
    assert len(calls) == 3  # the interrupted trial again, then two new ones; 0-2 are not rerun
    done = counted(study)
    assert len(done) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in done)
    assert {n: study.trials[n].params for n in (0, 1, 2)} == finished
    assert interrupted_params in [t.params for t in done if t.number > 3]


def test_a_failing_trial_is_recorded_with_its_error_and_the_study_goes_on(tmp_path):
    study = run_study(config(tmp_path, strategy="random", trials=4), parse_space(SPACE),
                      functools.partial(quadratic, fail_on=1))
    states = [t.state for t in sorted(counted(study), key=lambda t: t.number)]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert "RuntimeError: this trial's values break the model" in study.trials[1].user_attrs["error"]


def test_hyperband_prunes_weak_trials_on_reported_steps(tmp_path):
    def curve(trial):
        level = trial.params["x"]
        for step in range(1, 10):
            trial.report(step, level * step / 9)  # a bad x is bad from the first step
        return level

    study = run_study(config(tmp_path, strategy="hyperband", trials=24, max_steps=9),
                      parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}}), curve)
    pruned = [t for t in counted(study) if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and sum(9 - t.user_attrs["steps"] for t in pruned) >= 2 * len(pruned)  # steps saved
    assert len(counted(study)) == 24


def test_two_worker_processes_share_the_study_and_the_trial_count(tmp_path):
    study = run_study(config(tmp_path, strategy="random", trials=5, jobs=2), parse_space(SPACE), quadratic)
    done = counted(study)
    assert len(done) == 5 and len({t.number for t in done}) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in done)


@pytest.mark.parametrize("spec, message", [
    ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low 0.1 is above high 0.01"),
    ({"lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "log scale needs bounds above zero"),
    ({"lr": {"type": "real", "low": 0.0, "high": 0.1}}, "unknown parameter type"),
    ({"lr": {"type": "float", "high": 0.1}}, "needs low and high"),
    ({"lr": []}, "has no choices"),
    ({"lr": {"type": "int", "low": 1.5, "high": 3}}, "not an integer"),
    ({"learning_rate": [0.1]}, "unknown parameter in the search space: 'learning_rate'"),
])
def test_bad_search_spaces_are_config_errors_naming_the_parameter(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as caught:
        parse_space(spec, allowed={"lr": None, "depth": None})
    assert caught.value.exit_code == 2


def test_yaml_spaces_and_bad_strategy(tmp_path):
    (tmp_path / "space.yaml").write_text("lr: {type: float, low: 1e-4, high: 1e-2, log: true}\nmode: [head, finetune]\n")
    space = load_space(tmp_path / "space.yaml")
    assert space["lr"].low == pytest.approx(1e-4) and space["mode"].choices == ("head", "finetune")
    with pytest.raises(ConfigError, match="unknown strategy 'hyperbands'.*hyperband"):
        StudyConfig(name="s", directory=tmp_path, strategy="hyperbands", trials=3)
    with pytest.raises(ConfigError, match="continuous range"):
        run_study(config(tmp_path / "g", strategy="grid"), space, lambda t: 0.0)


def test_warm_start_seeds_a_new_study_with_the_earlier_trials_that_fit(tmp_path):
    from ocula.tune.study import WARM, parent_study

    run_study(config(tmp_path / "parent", strategy="random", trials=6, name="parent"), parse_space(SPACE), quadratic)
    narrower = parse_space({**SPACE, "x": {"type": "float", "low": 0.0, "high": 3.0}})
    url, name = parent_study(str(tmp_path / "parent"))
    parent = optuna.load_study(study_name=name, storage=url)
    fitting = [t for t in parent.trials if t.params["x"] >= 0.0]
    study = run_study(config(tmp_path / "child", strategy="bayesian", trials=3, warm_start=(url, name)),
                      narrower, quadratic)
    warm = [t for t in study.trials if t.user_attrs.get(WARM)]
    assert len(warm) == len(fitting) and sorted(t.value for t in warm) == sorted(t.value for t in fitting)
    assert len(counted(study)) == 3 and len(study.trials) == 3 + len(fitting)  # copies do not count
    with pytest.raises(ConfigError, match="not a study folder"):
        parent_study(str(tmp_path / "nowhere"))


def test_a_joiner_waits_for_the_settings_of_a_study_created_a_moment_ago(tmp_path):
    """`ocula tune --join` can load a study between its creation and the storing of its settings
    (seen in CI with PostgreSQL): it waits for them instead of calling it foreign."""
    import threading

    from ocula.tune.study import SETTINGS, settings

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    later = threading.Timer(1.0, lambda: study.set_user_attr(SETTINGS, {"strategy": "random"}))
    later.start()
    assert settings("s", url)["strategy"] == "random"
    later.join()

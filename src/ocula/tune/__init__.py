"""Search spaces and strategies over any objective, on Optuna; knows nothing of images or tables."""

from ocula.tune.space import KINDS, Param, load_space, parse_space
from ocula.tune.study import STRATEGIES, Pruned, Stop, StudyConfig, Trial, counted, run_study, summary

__all__ = ["KINDS", "STRATEGIES", "Param", "Pruned", "Stop", "StudyConfig", "Trial", "counted", "load_space",
           "parse_space", "run_study", "summary"]

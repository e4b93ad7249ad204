"""Search spaces: categorical, integer and float parameters, linear or log scaled.

A space is a mapping of parameter name to a spec, as written in YAML::

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    epochs: {type: int, low: 2, high: 8}
    augment: {type: categorical, choices: [crop, phone]}
    batch_size: [16, 32]          # a list is shorthand for a categorical

Every mistake is a ``ConfigError`` (exit code 2) naming the parameter and the rule. Nothing
here knows what the parameters mean: an objective passes the names it accepts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ocula.errors import ConfigError, first_line, unknown

KINDS = ("categorical", "int", "float")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        where = f"search space: {self.name}"
        if self.kind not in KINDS:
            raise unknown(f"parameter type in {where}:", str(self.kind), KINDS, ConfigError)
        if self.kind == "categorical":
            if not self.choices:
                raise ConfigError(f"{where} has no choices", hint="give choices: [a, b, ...]")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{where} needs low and high")
        for bound in (self.low, self.high):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
                raise ConfigError(f"{where}: bound {bound!r} is not a finite number")
            if self.kind == "int" and int(bound) != bound:
                raise ConfigError(f"{where}: bound {bound!r} is not an integer")
        if self.low > self.high:
            raise ConfigError(f"{where}: low {self.low:g} is above high {self.high:g}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log scale needs bounds above zero, got low {self.low:g}",
                              hint="use log: false, or a positive low")
        if self.step is not None and (self.step <= 0 or self.log):
            raise ConfigError(f"{where}: step must be positive and cannot be combined with log")

    def grid_values(self) -> list[Any]:
        """The values a grid tries: the choices, or every step of an integer range."""
        if self.kind == "categorical":
            return list(self.choices or ())
        if self.kind == "int" and not self.log:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))  # type: ignore[arg-type]
        if self.step is not None:
            count = int(round((self.high - self.low) / self.step))  # type: ignore[operator]
            return [self.low + i * self.step for i in range(count + 1)]  # type: ignore[operator]
        raise ConfigError(f"search space: {self.name} is a continuous range, which a grid cannot enumerate",
                          hint="give it choices, or a step, or use --strategy random/bayesian/hyperband")

    def contains(self, value: Any) -> bool:
        """Whether a value drawn earlier (possibly from another space) lies in this one."""
        if self.kind == "categorical":
            return value in (self.choices or ())
        return isinstance(value, (int, float)) and self.low <= value <= self.high  # type: ignore[operator]

    def distribution(self) -> Any:
        """The Optuna distribution ``suggest`` draws from."""
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(list(self.choices or ()))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))  # type: ignore[arg-type]
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"type": "categorical", "choices": list(self.choices or ())}
        out: dict[str, Any] = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        return out if self.step is None else {**out, "step": self.step}


def parse_space(spec: Mapping[str, Any], allowed: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """Spec mapping -> parameters; ``allowed`` (name -> anything) rejects unknown names."""
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError("the search space is empty or not a mapping of parameter -> range",
                          hint="e.g. lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}")
    params = {}
    for name, entry in spec.items():
        if allowed is not None and name not in allowed:
            raise unknown("parameter in the search space:", str(name), allowed, ConfigError)
        params[name] = _param(str(name), entry)
    return params


def load_space(path: str | os.PathLike[str], allowed: Mapping[str, Any] | None = None) -> dict[str, Param]:
    try:
        spec = yaml.safe_load(open(path, encoding="utf-8"))  # noqa: SIM115 - closed by GC, read once
    except OSError as error:
        raise ConfigError(f"cannot read search space {os.fspath(path)!r}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"search space {os.fspath(path)!r} is not valid YAML: {first_line(error)}") from None
    return parse_space(spec, allowed)


def _param(name: str, entry: Any) -> Param:
    if isinstance(entry, list):
        return Param(name, "categorical", tuple(entry))
    if not isinstance(entry, Mapping):
        raise ConfigError(f"search space: {name} must be a list of choices or a mapping with a type")
    extra = set(entry) - {"type", "choices", "low", "high", "log", "step"}
    if extra:
        raise ConfigError(f"search space: {name} has unknown keys {sorted(extra)}",
                          hint="use type, choices, low, high, log, step")
    kind = entry.get("type", "categorical" if "choices" in entry else None)
    if kind is None:
        raise ConfigError(f"search space: {name} has no type", hint="type: categorical, int or float")
    choices = entry.get("choices")
    return Param(name, str(kind), tuple(choices) if isinstance(choices, list) else choices,
                 _number(name, entry.get("low")), _number(name, entry.get("high")), bool(entry.get("log", False)),
                 entry.get("step"))


def _number(name: str, value: Any) -> Any:
    """YAML reads 1e-4 (no dot) as a string: accept it as the number it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"search space: {name}: bound {value!r} is not a number") from None
    return value


def suggest(trial: Any, params: Mapping[str, Param]) -> dict[str, Any]:
    """Draw one value per parameter from an Optuna trial."""
    values = {}
    for name, p in params.items():
        if p.kind == "categorical":
            values[name] = trial.suggest_categorical(name, list(p.choices or ()))
        elif p.kind == "int":
            values[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[name] = trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)
    return values

"""One tuning worker process for the PostgreSQL test: ``python -m tests.tune.pg_worker ROLE URL DIR``.

ROLE ``start`` creates the study; ``join`` waits for it and joins. Each trial appends
``number,pid`` to DIR/trials.log. A worker's first trial waits until both workers have one
running, so that both provably take part, whatever the timing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ocula.errors import UsageError
from ocula.tune import StudyConfig, parse_space, run_study
from ocula.tune.study import settings

SPACE = {"x": {"type": "float", "low": -2.0, "high": 2.0}, "kind": ["a", "b"]}
TRIALS = 8


def objective(trial, directory: str) -> float:
    folder = Path(directory)
    marker = folder / f"started-{os.getpid()}"
    if not marker.exists():
        marker.touch()
        waited = time.time()
        while len(list(folder.glob("started-*"))) < 2 and time.time() - waited < 120:
            time.sleep(0.05)
    with open(folder / "trials.log", "a") as log:
        log.write(f"{trial.number},{os.getpid()}\n")
    return -(trial.params["x"] - 0.5) ** 2 + (0.3 if trial.params["kind"] == "b" else 0.0)


def main(role: str, url: str, directory: str) -> None:
    import functools

    config = StudyConfig(name="shared", directory=Path(directory) / role, strategy="random", trials=TRIALS,
                         storage=url, seed=0)
    if role == "join":
        for _ in range(600):  # the other worker creates the study
            try:
                settings("shared", url)
                break
            except UsageError:
                time.sleep(0.1)
    run_study(config, parse_space(SPACE), functools.partial(objective, directory=directory), join=role == "join")


if __name__ == "__main__":
    main(*sys.argv[1:])

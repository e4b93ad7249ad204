"""AutoML for tables (what SageMaker Autopilot does): ``automl(data, target=...)`` returns a run.

The modules load on the first call (pandas, scikit-learn, LightGBM), so ``import ocula`` stays light.
"""

from __future__ import annotations

from typing import Any


def automl(data: str, **options: Any) -> Any:
    """Calls ocula.tabular.job.automl (see there)."""
    from ocula.tabular.job import automl as run

    return run(data, **options)


__all__ = ["automl"]

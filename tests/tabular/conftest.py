"""Tables made by the tests: a messy one with the faults the data report must find."""

from __future__ import annotations

import numpy as np
import pytest


def messy_frame(rows: int = 400, seed: int = 0):
    """A binary churn table with: ``customer_id`` (an id), ``region_code`` (constant), ``refund_flag``
    (leaks the target: it is the target with 1% noise), ``income`` and ``tenure`` 30% missing, a
    duplicate column, and real signal in ``tenure``, ``plan`` and ``income``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows).astype(float)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    income = rng.normal(50, 15, rows)
    logit = -0.05 * tenure + (plan == "basic") * 1.2 + 0.02 * (income - 50) + rng.normal(0, 0.5, rows) + 1.0
    churned = np.where(logit > 0, "yes", "no")
    leak = np.where(churned == "yes", 1, 0)
    flip = rng.random(rows) < 0.01
    leak[flip] = 1 - leak[flip]
    frame = pd.DataFrame({
        "customer_id": np.arange(100_000, 100_000 + rows), "tenure": tenure, "plan": plan, "income": income,
        "region_code": "EU", "refund_flag": leak, "plan_copy": plan, "churned": churned,
    })
    for column in ("income", "tenure"):
        frame.loc[rng.choice(rows, int(0.3 * rows), replace=False), column] = np.nan
    return frame


@pytest.fixture
def messy_csv(tmp_path):
    path = tmp_path / "churn.csv"
    messy_frame().to_csv(path, index=False)
    return path

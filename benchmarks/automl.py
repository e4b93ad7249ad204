"""ocula automl vs FLAML vs a default LightGBM: same splits, same metric, same budget, one run.

    .venv/bin/pip install flaml statsmodels        # or: pip install -e '.[bench]'
    .venv/bin/python benchmarks/automl.py ../shared/data/tabular/adult.csv --budget 60 \
        --out benchmarks/results/automl.json

Data sets: the adult census table given on the command line, scikit-learn's breast cancer, wine
and diabetes, and statsmodels' "fair" (affairs; binary: any affair). Each is split once into 80%
training and 20% test rows (stratified for classification, seed 0). ocula (`ocula.tabular.automl`,
the whole run incl. its reports within ``--budget``) and FLAML (``time_budget``) search on the
training rows; LightGBM fits with its defaults. All three are scored on the same test rows with the
problem's default metric (Autopilot's: F1 for binary, accuracy for multiclass, RMSE for regression).
"noise" is the paired bootstrap standard error of ocula's score minus LightGBM's on the test rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.model_selection import train_test_split

BOOTSTRAP = 1000


def datasets(adult: str) -> dict[str, tuple[pd.DataFrame, str, str]]:
    """name -> (frame, target column, kind)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
    from statsmodels.datasets import fair

    affairs = fair.load_pandas().data
    affairs["had_affair"] = np.where(affairs.pop("affairs") > 0, "yes", "no")
    return {
        "adult": (pd.read_csv(adult, skipinitialspace=True), "income", "binary"),
        "breast_cancer": (load_breast_cancer(as_frame=True).frame, "target", "binary"),
        "wine": (load_wine(as_frame=True).frame, "target", "multiclass"),
        "diabetes": (load_diabetes(as_frame=True).frame, "target", "regression"),
        "fair": (affairs, "had_affair", "binary"),
    }


METRIC = {"binary": "f1", "multiclass": "accuracy", "regression": "rmse"}


def score(kind: str, truth: np.ndarray, predicted: np.ndarray, positive: object = None) -> float:
    if kind == "regression":
        return float(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    if kind == "binary":
        return float(metrics.f1_score(truth, predicted, pos_label=positive))
    return float(metrics.accuracy_score(truth, predicted))


def run_ocula(train: pd.DataFrame, test: pd.DataFrame, target: str, budget: float, work: Path) -> np.ndarray:
    from ocula.tabular import automl
    from ocula.tabular.model import TabularModel

    path = work / "train.csv"
    train.to_csv(path, index=False)
    result = automl(str(path), target=target, budget=budget, out=str(work / "run"), runs_root=str(work / "runs"),
                    quiet=True)
    answers = TabularModel.load(result.path / "model").answers(test.drop(columns=[target]))
    key = "prediction" if "prediction" in answers[0] else "predicted_label"
    return np.array([a[key] for a in answers])


def run_flaml(train: pd.DataFrame, test: pd.DataFrame, target: str, kind: str, budget: float) -> np.ndarray:
    from flaml import AutoML

    model = AutoML()
    model.fit(train.drop(columns=[target]), train[target], task="regression" if kind == "regression" else
              "classification", metric=METRIC[kind], time_budget=budget, seed=0, verbose=0, n_jobs=2)
    return np.asarray(model.predict(test.drop(columns=[target])))


def run_lightgbm(train: pd.DataFrame, test: pd.DataFrame, target: str, kind: str) -> np.ndarray:
    import lightgbm

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        X = frame.drop(columns=[target]).copy()
        for column in X.columns:
            if not pd.api.types.is_numeric_dtype(X[column]):
                X[column] = pd.Categorical(X[column], categories=sorted(train[column].dropna().unique()))
        return X

    model = (lightgbm.LGBMRegressor if kind == "regression" else lightgbm.LGBMClassifier)(verbosity=-1, n_jobs=2,
                                                                                           random_state=0)
    model.fit(features(train), train[target])
    return np.asarray(model.predict(features(test)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adult", help="adult.csv (the UCI census income table)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per system and data set")
    parser.add_argument("--only", nargs="*", help="data set names to run")
    parser.add_argument("--out", default="benchmarks/results/automl.json")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    rows = []
    for name, (frame, target, kind) in datasets(args.adult).items():
        if args.only and name not in args.only:
            continue
        frame = frame.dropna(subset=[target]).reset_index(drop=True)
        train, test = train_test_split(frame, test_size=0.2, random_state=0,
                                       stratify=None if kind == "regression" else frame[target])
        positive = frame[target].value_counts().index[-1] if kind == "binary" else None  # the minority class
        truth = test[target].to_numpy()
        predictions, seconds = {}, {}
        for system in ("ocula", "flaml", "lightgbm"):
            began = time.perf_counter()
            with tempfile.TemporaryDirectory() as work:
                if system == "ocula":
                    predictions[system] = run_ocula(train, test, target, args.budget, Path(work))
                elif system == "flaml":
                    predictions[system] = run_flaml(train, test, target, kind, args.budget)
                else:
                    predictions[system] = run_lightgbm(train, test, target, kind)
            seconds[system] = round(time.perf_counter() - began, 1)
        predictions = {s: p.astype(truth.dtype) if kind != "regression" else p.astype(float)
                       for s, p in predictions.items()}
        scores = {s: score(kind, truth, p, positive) for s, p in predictions.items()}
        rng = np.random.default_rng(0)
        differences = []
        for _ in range(BOOTSTRAP):
            pick = rng.integers(0, len(truth), len(truth))
            differences.append(score(kind, truth[pick], predictions["ocula"][pick], positive)
                               - score(kind, truth[pick], predictions["lightgbm"][pick], positive))
        lower_is_better = kind == "regression"
        order = pd.Series(scores).rank(ascending=lower_is_better, method="average")
        row = {"data": name, "rows": len(frame), "kind": kind, "metric": METRIC[kind], "scores": scores,
               "ranks": order.to_dict(), "seconds": seconds,
               "ocula_minus_lightgbm": round(scores["ocula"] - scores["lightgbm"], 4),
               "noise": round(float(np.std(differences)), 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    average = {s: round(float(np.mean([r["ranks"][s] for r in rows])), 3) for s in ("ocula", "flaml", "lightgbm")}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    result = {"date": time.strftime("%Y-%m-%d"), "budget_seconds": args.budget, "command": " ".join(sys.argv),
              "results": rows, "average_rank": average, "peak_rss_mb": peak}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| data | rows | metric | ocula | FLAML | LightGBM (defaults) | ocula − LightGBM (± noise) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["scores"]
        print(f"| {r['data']} | {r['rows']} | {r['metric']} | {s['ocula']:.4f} | {s['flaml']:.4f} | "
              f"{s['lightgbm']:.4f} | {r['ocula_minus_lightgbm']:+.4f} (± {r['noise']:.4f}) |")
    print(f"average rank (1 is best): {average}; peak RSS {peak} MB")


if __name__ == "__main__":
    main()

"""``candidate.py``: the best model as a runnable script that needs scikit-learn (and the model's
library, e.g. LightGBM) but not ocula. It is ``pipeline.py``'s own source plus the run's spec,
so it rebuilds exactly what ocula cross-validated (Autopilot's candidate definition notebook).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from ocula.tabular import pipeline

MAIN = '''

SPEC = json.loads(r"""{spec}""")


def read(path):
    if path.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    return pd.read_csv(path, sep=SPEC["sep"], skipinitialspace=True)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", default=SPEC["data"], help="the training table (default: the run's)")
    parser.add_argument("--predict", help="fit on all of DATA, then predict this table's rows")
    parser.add_argument("--out", default="predictions.csv", help="where --predict writes (CSV)")
    args = parser.parse_args()
    frame = read(args.data)
    frame.columns = [str(c).strip() for c in frame.columns]
    X, y = prepare(frame, SPEC)
    members, weights = SPEC["members"], [m["weight"] for m in SPEC["members"]]
    if args.predict:
        fitted = [build(m, SPEC).fit(X, y) for m in members]
        new = read(args.predict)
        n = len(SPEC["labels"])
        blended = blend([predict(f, new[list(SPEC["columns"])], SPEC["kind"], n) for f in fitted], weights)
        column = blended if SPEC["kind"] == "regression" else [SPEC["labels"][i] for i in decide(blended, SPEC.get("threshold"))]
        pd.DataFrame({{SPEC["target"]: column}}).to_csv(args.out, index=False)
        print(f"wrote {{len(new)}} predictions to {{args.out}}")
        return
    oof = blend([cross_val_predict(SPEC, X, y, m) for m in members], weights)
    scores = fold_scores(SPEC, y, oof)
    print(json.dumps({{"metric": SPEC["metric"], "score": float(np.mean(scores)), "std": float(np.std(scores)),
                      "folds": scores}}))


if __name__ == "__main__":
    main()
'''


def write_script(path: Path, spec: dict[str, Any], title: str) -> None:
    source = inspect.getsource(pipeline)
    _, _, body = source.partition('"""\n\nfrom __future__ import annotations\n')  # the module docstring
    header = (f'"""{title}\n\nRebuilds the best model of an `ocula automl` run with scikit-learn alone '
              "(and the model's own library).\n\n    python candidate.py [DATA]                 "
              "# cross-validates it; prints the score as JSON\n    python candidate.py DATA --predict NEW.csv"
              "  # fits on DATA, predicts NEW\n\"\"\"\n\nfrom __future__ import annotations\n\nimport json\n")
    text = header + body + MAIN.format(spec=json.dumps(spec, indent=1, default=str))
    path.write_text(text, encoding="utf-8")

"""The tabular run's pages: ``data_report.html`` (what the table holds and what is wrong with
it) and ``report.html`` (leaderboard, model quality on out-of-fold predictions, importance)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ocula.evaluate.html import PAGE, img, section, table

SEVERITY_CLASS = {"high": "major", "medium": "minor", "low": "info"}


def data_report_html(path: Path, report: dict[str, Any], source: str) -> None:
    problem = report["problem"]
    warnings = "".join(
        f'<div class="finding {SEVERITY_CLASS[w["severity"]]}"><span class="badge">{w["severity"]}</span> '
        f'<b>{escape(w["column"])}</b> {escape(w["message"])}</div>' for w in report["warnings"]
    ) or "<p>No warnings.</p>"
    columns = [[name, c["kind"], c["evidence"], c["dtype"], f"{c['missing']:.1%}", c["distinct"],
                report["excluded"].get(name, "feature")] for name, c in report["column_report"].items()]
    target = report["target"]
    if problem["kind"] == "regression":
        target_body = table(["mean", "std", "min", "median", "max", "skew"],
                            [[f"{target[k]:.4g}" for k in ("mean", "std", "min")]
                             + [f"{target['quantiles'][0.5]:.4g}", f"{target['max']:.4g}", f"{target['skew']:.3f}"]])
    else:
        target_body = table(["class", "rows", "share"], [[k, v, f"{v / sum(target['classes'].values()):.1%}"]
                                                          for k, v in target["classes"].items()], "numbers")
    pairs = report["correlations"]["pairs"]
    with_target = report["correlations"]["with_target"]
    body = "\n".join([
        f"<h1>Data report: {escape(Path(source).name)}</h1>",
        f'<p class="meta">{report["rows"]} rows, {report["columns"]} columns; target <code>{escape(problem["target"])}'
        f'</code>: {problem["kind"]} ({escape(problem["evidence"])}); metric {problem["metric"]}; '
        f'{report["duplicate_rows"]} duplicate rows; {report["missing_target_rows"]} rows without a target.</p>',
        section("warnings", f"Warnings ({len(report['warnings'])})", warnings),
        section("target", "Target", target_body),
        section("columns", "Columns", table(["column", "kind", "evidence", "dtype", "missing", "distinct", "use"],
                                            columns)),
        section("correlations", "Correlations",
                (table(["column", "column", "r"], [[p["a"], p["b"], p["r"]] for p in pairs]) if pairs
                 else "<p>No pair of numeric features correlates above 0.9.</p>")
                + (table(["column", "r with the target"], [[k, v] for k, v in with_target.items()])
                   if with_target else "")),
    ])
    path.write_text(PAGE.format(title=f"Data report: {escape(Path(source).name)}", body=body), encoding="utf-8")


def quality(problem: dict[str, Any], y: np.ndarray, oof: np.ndarray,
            threshold: float | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Model-quality metrics and figures from out-of-fold predictions (labels decided with the
    binary ``threshold`` when one was tuned)."""
    from ocula.tabular.pipeline import decide
    from sklearn import metrics

    from ocula.evaluate import plots

    if problem["kind"] == "regression":
        summary = {"rmse": float(np.sqrt(metrics.mean_squared_error(y, oof))),
                   "mae": float(metrics.mean_absolute_error(y, oof)), "r2": float(metrics.r2_score(y, oof))}
        return summary, {"residuals": plots.residuals(y, oof)}
    classes = [str(c) for c in problem["labels"]]
    predicted = decide(oof, threshold)
    matrix = metrics.confusion_matrix(y, predicted, labels=list(range(len(classes))))
    summary = {"accuracy": float(metrics.accuracy_score(y, predicted)),
               "balanced_accuracy": float(metrics.balanced_accuracy_score(y, predicted)),
               "f1_macro": float(metrics.f1_score(y, predicted, average="macro", zero_division=0)),
               "log_loss": float(metrics.log_loss(y, np.clip(oof, 1e-15, 1), labels=list(range(len(classes))))),
               "confusion": matrix.tolist(), "classes": classes}
    if len(classes) == 2:
        summary["auc"] = float(metrics.roc_auc_score(y, oof[:, 1]))
    figures = {"confusion": plots.confusion_heatmap(matrix.tolist(), classes),
               "roc_pr": plots.roc_pr_curves(y, oof, classes)}
    return summary, figures


def model_report_html(path: Path, result: dict[str, Any], figures: dict[str, bytes]) -> None:
    problem, metric = result["problem"], result["problem"]["metric"]
    board = table(["model", metric, "± std", "fit s (all folds)", "predict s / 1,000 rows"],
                  [[r["model"], f"{r[metric]:.4f}", f"{r['std']:.4f}", r["fit_seconds"], r["predict_seconds_per_1000"]]
                   for r in result["leaderboard"]], "numbers")
    best = result["best"]
    members = table(["model", "weight", "parameters"], [[m["candidate"], m["weight"], m["params"]]
                                                         for m in best["members"]])
    summary = result["quality"]
    shown = {k: v for k, v in summary.items() if isinstance(v, float)}
    cards = "".join(f'<div class="card"><div class="value">{v:.4f}</div><div class="label">{escape(k)}</div></div>'
                    for k, v in shown.items())
    importance = result.get("importance", {})
    excluded = result.get("excluded", {})
    body = "\n".join([
        f"<h1>AutoML: {escape(problem['target'])} ({problem['kind']})</h1>",
        f'<p class="meta">Best: <b>{escape(best["model"])}</b>, {metric} {best[metric]:.4f} ± {best["std"]:.4f} '
        f'({result["folds"]}-fold cross-validation, {result["rows"]} rows'
        + (f'; class {escape(str(problem["labels"][1]))!r} from probability {best["threshold"]:.2f}, the threshold '
           'that scored best out of fold' if best.get("threshold") is not None else "")
        + f'); {result["seconds"]:.0f} s of a '
        f'{result["budget_seconds"]:.0f} s budget. <a href="data_report.html">Data report</a>; '
        '<code>candidate.py</code> rebuilds this model with scikit-learn alone.</p>',
        section("leaderboard", "Leaderboard", board),
        section("best", "Best model", members),
        section("quality", "Quality on out-of-fold predictions",
                f'<div class="cards">{cards}</div>' + "".join(img(png, name) for name, png in figures.items()
                                                              if not name.startswith("importance"))),
        section("importance", "Feature importance",
                "<p>Permutation importance: how much the score drops when one column is shuffled "
                "(on a held-out fold).</p>" + img(figures.get("importance_permutation"), "permutation importance")
                + (img(figures.get("importance_shap"), "SHAP") if figures.get("importance_shap") else "")
                + table(["column", "importance"], [[k, f"{v:.4f}"] for k, v in importance.get("permutation", {}).items()],
                        "numbers")),
        section("excluded", "Columns left out", table(["column", "reason"], [[k, v] for k, v in excluded.items()])
                if excluded else "<p>None.</p>"),
    ])
    path.write_text(PAGE.format(title=f"AutoML: {escape(problem['target'])}", body=body), encoding="utf-8")

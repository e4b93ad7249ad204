"""ocula tune (hyperband) vs a default ocula train given the same wall time, same data, one run.

    .venv/bin/python benchmarks/tune_budget.py ../shared/data/grocery --budget 20m --trials 12 \
        --out benchmarks/results/tune_budget.json

Runs ``ocula tune DATA --strategy hyperband --trials N --budget B`` (the default search space),
then ``ocula train DATA --budget B`` with every default, one after the other, each timed as a
whole command with its peak RSS. Reports the best trial's validation accuracy against the
train run's, whether the study finished within its budget, the trials by state, and the
epochs pruning saved (for each pruned trial, the epochs it would have run up to
``--max-epochs`` minus those it ran).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the command (MB), and its last stdout line."""
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed:\n{result.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return seconds, peak, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/tune_budget.json")
    args = parser.parse_args()
    ocula = str(Path(sys.executable).with_name("ocula"))
    work = Path(tempfile.mkdtemp(prefix="ocula-tune-bench-"))
    budget_seconds = {"s": 1, "m": 60, "h": 3600}[args.budget[-1]] * float(args.budget[:-1])

    tune_cmd = [ocula, "tune", args.data, "--strategy", "hyperband", "--trials", str(args.trials), "--budget",
                args.budget, "--max-epochs", str(args.max_epochs), "--out", str(work / "study")]
    tune_seconds, tune_peak, _ = timed(tune_cmd)
    board = json.loads((work / "study" / "leaderboard.json").read_text())
    trials = board["trials"]
    pruned = [t for t in trials if t["status"] == "pruned"]
    saved = sum(args.max_epochs - (t["epochs"] or 0) for t in pruned)
    best = max((t for t in trials if t["status"] == "complete"), key=lambda t: t["validation:accuracy"])

    train_cmd = [ocula, "train", args.data, "--budget", args.budget, "--out", str(work / "train"), "--quiet"]
    train_seconds, _, _ = timed(train_cmd)  # (RUSAGE_CHILDREN peak would include the study)
    train_best = json.loads((work / "train" / "metrics.json").read_text())["best"]

    result = {
        "date": time.strftime("%Y-%m-%d"), "budget_seconds": budget_seconds,
        "tune": {"command": shlex.join(tune_cmd), "seconds": round(tune_seconds, 1), "within_budget":
                 tune_seconds <= budget_seconds, "peak_rss_mb": tune_peak,
                 "trials": {s: sum(t["status"] == s for t in trials) for s in ("complete", "pruned", "fail")},
                 "epochs_saved_by_pruning": saved, "best_trial": best["trial"], "best_params": best["params"],
                 "best_validation_accuracy": best["validation:accuracy"], "leaderboard": trials},
        "train": {"command": shlex.join(train_cmd), "seconds": round(train_seconds, 1),
                  "validation_accuracy": train_best.get("validation:accuracy"), "best_epoch": train_best.get("epoch")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| system | wall time | validation accuracy | notes |\n|---|---|---|---|\n"
          f"| ocula tune (hyperband, {args.trials} trials) | {tune_seconds:.0f} s | "
          f"{best['validation:accuracy']:.4f} | trial {best['trial']}: {json.dumps(best['params'])}; "
          f"{result['tune']['trials']}; pruning saved {saved} epochs |\n"
          f"| ocula train (defaults) | {train_seconds:.0f} s | {train_best.get('validation:accuracy', 0):.4f} | "
          f"best epoch {train_best.get('epoch')} |")
    print(f"raw: {args.out}; study and run in {work}")


if __name__ == "__main__":
    main()

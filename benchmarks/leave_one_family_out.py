"""Leave-one-family-out: does the phone policy hold on an effect it never trained on?

    .venv/bin/python benchmarks/leave_one_family_out.py ../shared/data/grocery \
        --none /tmp/ocula-runs/grocery-none --phone /tmp/ocula-runs/grocery-phone2 \
        --runs /tmp/ocula-runs/lofo-grocery --epochs 3 --out benchmarks/results/leave_one_family_out_grocery.json

For every effect family of ``--augment phone`` (``ocula.data.phone.FAMILIES``) this trains a run
with ``--augment phone-without:FAMILY`` (skipped when ``--runs/phone-without-FAMILY`` already holds
a finished run, so an interrupted benchmark resumes), then scores the family it left out:

* on ocula's own suite: ``ocula evaluate --shift phone`` on ``--shift-images`` test photos, the
  mean drop over that family's corruptions (``HELD_OUT``) and their three severities;
* on ImageNet-C, which ocula did not write (``benchmarks/external_shift.py`` with that family's
  ImageNet-C corruptions, ``EXTERNAL``), the mean drop over five severities.

Each family's runs (``--none``, ``--phone`` and the one without the family) are scored on the same
corrupted images. The policy generalises to a family when the run that never saw it drops at most
half as much as ``--augment none``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from ocula.data.phone import FAMILIES

# The family's corruptions in ocula's suite (ocula.data.corruptions) ...
HELD_OUT = {
    "geometry": ["rotation_perspective"],
    "blur": ["defocus_blur", "motion_blur"],
    "exposure": ["dark", "bright"],
    "noise": ["sensor_noise"],
    "white_balance": ["colour_temperature"],
    "contrast": ["low_contrast"],
    "jpeg": ["jpeg"],
}
# ... and in ImageNet-C (glass blur left out: it alone would take longer than the rest together;
# white balance has no ImageNet-C counterpart).
EXTERNAL = {
    "geometry": ["elastic_transform"],
    "blur": ["defocus_blur", "motion_blur", "zoom_blur"],
    "exposure": ["brightness"],
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise"],
    "white_balance": [],
    "contrast": ["contrast", "fog"],
    "jpeg": ["jpeg_compression"],
}


def _run(command: list[str]) -> None:
    print("$ " + shlex.join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--none", type=Path, required=True, help="a run trained with --augment none")
    parser.add_argument("--phone", type=Path, required=True, help="a run trained with --augment phone")
    parser.add_argument("--runs", type=Path, required=True, help="folder for the phone-without-FAMILY runs")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--consistency", type=float, default=None,
                        help="--consistency of the phone-without runs (default: ocula's, 12 with a phone policy); "
                             "0 reproduces the table measured before the consistency loss")
    parser.add_argument("--split", default="test")
    parser.add_argument("--shift-images", type=int, default=400)
    parser.add_argument("--external-images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/leave_one_family_out.json"))
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    ocula = str(bin_dir / "ocula")

    def shift_drops(run: Path) -> tuple[float, dict[str, float]]:
        """ocula's suite on ``run``: accuracy on the whole split, and the mean drop per corruption
        (over its three severities) on the sample."""
        out = args.runs / "evaluations" / run.name
        if not (out / "metrics.json").exists():
            _run([ocula, "evaluate", str(run), args.data, "--split", args.split, "--shift", "phone",
                  "--shift-images", str(args.shift_images), "--out", str(out), "--quiet"])
        metrics = json.loads((out / "metrics.json").read_text())
        by = metrics["robustness"]["by_corruption"]
        return round(metrics["summary"]["accuracy"], 4), {name: entry["mean_drop"] for name, entry in by.items()}

    def external_drops(runs: list[Path], family: str) -> dict[str, float]:
        """ImageNet-C on ``runs`` for ``family``'s corruptions: mean drop per run."""
        if not EXTERNAL[family]:
            return {}
        out = args.runs / "external" / f"{family}.json"
        if not out.exists():
            _run([sys.executable, str(Path(__file__).with_name("external_shift.py")), *map(str, runs),
                  "--data", args.data, "--split", args.split, "--images", str(args.external_images),
                  "--corruptions", *EXTERNAL[family], "--out", str(out)])
        return {name: entry["mean_drop"] for name, entry in json.loads(out.read_text())["runs"].items()}

    (clean_none, none), (clean_phone, phone) = shift_drops(args.none), shift_drops(args.phone)
    rows = []
    for family in args.families:
        run = args.runs / f"phone-without-{family}"
        if not (run / "model" / "model.onnx").exists():
            extra = [] if args.consistency is None else ["--consistency", str(args.consistency)]
            _run([ocula, "train", args.data, "--augment", f"phone-without:{family}", "--epochs", str(args.epochs),
                  *extra, "--out", str(run), "--quiet"])
        clean, held = shift_drops(run)
        mean = lambda drops: round(sum(drops[c] for c in HELD_OUT[family]) / len(HELD_OUT[family]), 4)  # noqa: E731
        external = external_drops([args.none, args.phone, run], family)
        row = {"family": family, "left_out": list(FAMILIES[family]), "corruptions": HELD_OUT[family],
               "drop_none": mean(none), "drop_phone": mean(phone), "drop_without": mean(held),
               "accuracy_none": clean_none, "accuracy_phone": clean_phone, "accuracy_without": clean,
               "external_corruptions": EXTERNAL[family]}
        if external:
            row |= {"external_drop_none": external[args.none.name], "external_drop_phone": external[args.phone.name],
                    "external_drop_without": external[run.name]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        result = {"command": shlex.join([sys.executable, *sys.argv]), "date": dt.date.today().isoformat(),
                  "cpus": os.cpu_count(), "data": args.data, "split": args.split, "shift_images": args.shift_images,
                  "external_images": args.external_images, "families": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after every family: a cut-off run keeps its rows
    print(args.out)


if __name__ == "__main__":
    main()

"""``ocula batch``: score a folder, an image or a manifest into JSON Lines, resumable."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ocula.cli import TTA_HELP

Opt = typer.Option
SHOWN_BAD = 20  # bad files listed in the summary; the errors file has them all


def batch(
    run: Annotated[str, typer.Argument(help="A run directory written by `ocula train` (or `ocula automl`: then INPUT is "
                                          "a CSV or Parquet table).")],
    input: Annotated[str, typer.Argument(  # noqa: A002 - the command's argument is called INPUT
        help="A folder (every image below it), one image, or a manifest: .lst, CSV, JSON Lines, a folder with "
             "train.txt + classes.csv (all splits), or its test.txt / val.txt alone; manifests keep true labels.")],
    out: Annotated[str, Opt("--out", "-o", help="JSON Lines output. An existing file is continued: sources "
                                                 "already in it are skipped.")],
    backend: Annotated[str, Opt(help="auto (ONNX Runtime, PyTorch if the export fails), onnx or torch.")] = "auto",
    batch_size: Annotated[int, Opt(help="Images per model call (16: as fast as 32 on CPU, with half the memory).")] = 16,
    top_k: Annotated[int, Opt(help="Add the k most probable labels to each line when k > 1.")] = 1,
    min_confidence: Annotated[Optional[float], Opt(
        help="Mark an image whose top probability is below this, or that is unlike every training photo (blank, "
             "noise; 0 marks only those), \"rejected\": true, with a null label and the reason.")] = None,
    tta: Annotated[bool, Opt("--tta", help=TTA_HELP + " Images only.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar; print only the output path.")] = False,
) -> None:
    """Score every image into one {"source", "label", "probability", "prediction"} line each (a tabular
    run: every row into {"row", "predicted_label", "probability", ...} or {"row", "prediction"}).

    Streams with a progress bar; a re-run after an interruption continues where it stopped.
    Unusable files are skipped, listed beside the output (preds.jsonl -> preds.errors.jsonl) and tried
    again next time.
    The last line printed is the output path.
    """
    from ocula.serve.batch import score

    result = score(run, input, out, backend=backend, batch_size=batch_size, top_k=top_k, progress=not quiet,
                   min_confidence=min_confidence, tta=tta, log=(lambda message: None) if quiet else None)
    if not quiet:
        print(f"input: {input} read as {result.input}, {result.total} {result.unit}")
        print(f"model: {result.model}")
        print(f"written: {result.written}")
        print(f"already done: {result.skipped_existing} (in {result.out.name} from an earlier run, skipped)")
        if min_confidence is not None:
            print(f"rejected: {result.rejected} of {result.written} (top probability below {min_confidence:g}; "
                  "\"label\": null)")
        bad = "bad rows" if result.unit == "rows" else "bad files"
        if result.bad:
            print(f"{bad}: {len(result.bad)} (skipped, listed in {result.errors}, tried again on the next run)")
            for path, reason in result.bad[:SHOWN_BAD]:
                print(f"  {path}: {reason}")
            if len(result.bad) > SHOWN_BAD:
                print(f"  ... and {len(result.bad) - SHOWN_BAD} more")
        else:
            print(f"{bad}: 0")
        print(f"throughput: {result.images_per_second:.1f} {result.unit}/s ({result.written} {result.unit} in "
              f"{result.seconds:.1f} s); peak memory {result.peak_rss_mb} MB")
    print(result.out)

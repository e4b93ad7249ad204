"""``ocula batch`` for a tabular run (``ocula automl``): a CSV or Parquet table in, one JSON line
per row out — ``{"row", "predicted_label", "probability", "probabilities", "labels"}`` or
``{"row", "prediction"}`` — with the image scorer's guarantees: rows go out a chunk per write, a
re-run continues after the rows already written, and a row that does not fit the model's schema
is skipped and listed in ``<out stem>.errors.jsonl`` with the column at fault.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ocula.serve.batch import BatchResult, append, errors_path_for, open_output, progress_bar, read_done
from ocula.storage import RunDir

CHUNK_ROWS = 2000  # rows per model call and per write


def score_table(run_dir: RunDir, source: str | os.PathLike[str], out_path: Path, *, progress: bool = True) -> Any:
    """Score every row of ``source`` with the run's tabular model, appending to ``out_path``."""
    from ocula.tabular.model import SchemaError, TabularModel
    from ocula.tabular.table import read_table

    model = TabularModel.load(run_dir.model_dir)  # refuses a foreign or unsafe model file first
    frame = read_table(source)
    errors_path = errors_path_for(out_path)
    done = read_done(out_path, key="row")
    todo = [i for i in range(len(frame)) if i not in done]
    result = BatchResult(out=out_path, errors=errors_path, input=f"table ({len(frame)} rows)", total=len(frame),
                         written=0, skipped_existing=len(frame) - len(todo), model=model.card.get("best", ""),
                         unit="rows")
    began = time.perf_counter()
    fd = open_output(out_path)
    try:
        with errors_path.open("w", encoding="utf-8") as errors, progress_bar(progress, len(todo), "rows") as advance:
            for start in range(0, len(todo), CHUNK_ROWS):
                rows = frame.iloc[todo[start : start + CHUNK_ROWS]]
                try:
                    scored = list(zip(rows.index, model.answers(rows)))
                except SchemaError:  # one bad row fails the chunk: find it and keep the others
                    scored = []
                    for index in rows.index:
                        try:
                            scored.append((index, model.answers(rows.loc[[index]])[0]))
                        except SchemaError as error:
                            errors.write(json.dumps({"row": int(index), "reason": "schema_error",
                                                     "column": error.column, "detail": error.message}) + "\n")
                            result.bad.append((f"row {index}", f"{error.column}: {error.message}"))
                lines = "".join(json.dumps({"row": int(i), **answer}) + "\n" for i, answer in scored)
                append(fd, lines.encode("utf-8"), out_path, result.written)
                result.written += len(scored)
                advance(len(rows))
    except KeyboardInterrupt:
        raise result.interrupted() from None
    finally:
        os.close(fd)
        result.finish(began)
    return result

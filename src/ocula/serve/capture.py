"""Data capture: a sampled record of live requests as JSON Lines, for ``ocula monitor``.

One file per server process (``capture-<start time>-<pid>.jsonl``), one line per captured
image: request id, time, top prediction, probabilities and the cheap image statistics of
``ocula.data.stats`` — never the image itself, so a capture holds no customer photos.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ocula.data.stats import image_stats
from ocula.errors import UsageError

CAPTURE_GLOB = "capture-*.jsonl"


class Capture:
    def __init__(self, directory: str | os.PathLike[str], percent: float = 100.0, *, seed: int | None = None) -> None:
        if not 0 < percent <= 100:
            raise UsageError(f"capture percentage {percent:g} is out of range", hint="use a value in (0, 100]")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create capture folder {str(directory)!r}: {error.strerror}") from None
        self.percent = percent
        self.path = self.directory / f"capture-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._file = None

    def sampled(self) -> bool:
        with self._lock:
            return self.percent >= 100 or self._random.random() * 100 < self.percent

    def record(self, request_id: str, index: int, array: np.ndarray, size: tuple[int, int],
               probabilities: np.ndarray, labels: list[str]) -> None:
        """Append one line for image ``index`` of request ``request_id``."""
        top = int(np.argmax(probabilities))
        line: dict[str, Any] = {
            "request_id": request_id, "index": index, "time": round(time.time(), 3),
            "predicted_label": labels[top], "probability": round(float(probabilities[top]), 6),
            "probabilities": [round(float(p), 6) for p in probabilities],
            "stats": {**image_stats(array), "width": size[0], "height": size[1],
                      "megapixels": round(size[0] * size[1] / 1e6, 4)},
        }
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
            self._file.write(text)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

"""``ocula export RUN --int8``: static int8 quantisation, kept only if accuracy holds.

ONNX Runtime's static QDQ quantisation of ``model.onnx``: uint8 activations, per-channel int8
weights with reduced range (AVX2 CPUs without VNNI saturate at full range), calibrated on
training images. Depthwise convolutions and the first convolution stay in float: after batch
norm is folded in, their per-channel ranges are too uneven for 8 bits (on the grocery model,
quantising them cost 15 points of accuracy instead of 2). Accuracy of both models is then
measured on the validation images, which calibration never saw, with the speed of each; an
int8 model that loses more than ``max_drop`` is refused and not written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocula.errors import UsageError, first_line
from ocula.inference.engines import Engine, OnnxEngine
from ocula.inference.export import ExportError
from ocula.inference.predictor import INT8_NAME, Predictor
from ocula.models.card import ModelCard
from ocula.storage import RunDir, read_json, write_json

CALIBRATION_IMAGES = 64
MAX_DROP = 0.01  # accuracy, as a fraction: one point
SPEED_BATCH, SPEED_REPEATS = 16, 5


@dataclass(frozen=True)
class Int8Result:
    path: Path | None  # None when refused
    accuracy_fp32: float
    accuracy_int8: float
    images: int
    speedup: float
    max_drop: float

    @property
    def drop(self) -> float:
        return self.accuracy_fp32 - self.accuracy_int8

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "accuracy_fp32": round(self.accuracy_fp32, 4),
                "accuracy_int8": round(self.accuracy_int8, 4), "drop": round(self.drop, 4),
                "validation_images": self.images, "speedup": round(self.speedup, 2), "max_drop": self.max_drop,
                "accepted": self.path is not None}


def quantize(run: str | os.PathLike[str], fp32: Path, *, max_drop: float = MAX_DROP, log=None) -> Int8Result:
    """Write ``RUN/model/model.int8.onnx`` next to the checked fp32 export, or refuse."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, \
        quantize_static

    say = log or (lambda message: None)
    run_dir = RunDir.open(run, need=("card", "weights", "split"))
    fp32_engine = OnnxEngine(fp32)
    reference = Predictor(ModelCard.from_json(run_dir.card), fp32_engine)
    split = read_json(run_dir.split)
    calibration = reference.images([row[0] for row in _sample(split.get("train", []), CALIBRATION_IMAGES)])
    validation_rows = split.get("val") or []
    if len(calibration) < 8 or not validation_rows:
        raise UsageError("int8 needs the run's training and validation images to calibrate and to measure "
                         "accuracy, and they are not on this machine", hint="export without --int8")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = (calibration[i:i + 8] for i in range(0, len(calibration), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {fp32_engine.input: batch}

    target = run_dir.model_dir / INT8_NAME
    prepared, partial = target.with_suffix(".pre.onnx"), target.with_suffix(".partial")
    say(f"calibrating int8 on {len(calibration)} training images ...")
    try:
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(str(prepared), str(partial), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                        nodes_to_exclude=_float_convs(prepared))
    except Exception as error:  # noqa: BLE001 - an operator the quantiser cannot handle: one line
        partial.unlink(missing_ok=True)
        raise ExportError(f"int8 quantisation failed: {first_line(error)}") from None
    finally:
        prepared.unlink(missing_ok=True)
    say(f"measuring fp32 and int8 accuracy on {len(validation_rows)} validation images ...")
    int8 = OnnxEngine(partial)
    (fp32_accuracy, int8_accuracy), images, batch = _accuracies(reference, int8, validation_rows)
    speedup = _speed(int8, batch) / _speed(fp32_engine, batch)
    accepted = fp32_accuracy - int8_accuracy <= max_drop
    if accepted:
        os.replace(partial, target)
    else:
        partial.unlink()
    result = Int8Result(target if accepted else None, fp32_accuracy, int8_accuracy, images, speedup, max_drop)
    record = read_json(run_dir.model_dir / "export.json") if (run_dir.model_dir / "export.json").exists() else {}
    temperature = float(record.get("onnx", {}).get("temperature", 1.0))  # the fp32 graph it was made from
    write_json(run_dir.model_dir / "export.json", {**record, "int8": {**result.to_dict(), "temperature": temperature}})
    return result


def _float_convs(path: Path) -> list[str]:
    """Names of the first convolution and of every depthwise (grouped) convolution."""
    import onnx

    convs = [node for node in onnx.load(str(path)).graph.node if node.op_type == "Conv"]
    grouped = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    return ([convs[0].name] if convs else []) + grouped


def _sample(rows: list, n: int) -> list:
    if len(rows) <= n:
        return rows
    return [rows[i] for i in np.random.default_rng(0).choice(len(rows), n, replace=False)]


def _accuracies(reference: Predictor, int8: Engine, rows: list) -> tuple[list[float], int, np.ndarray]:
    """Top-1 accuracy of the fp32 predictor and of the int8 engine on the same images; also one batch for timing."""
    correct, seen, first = [0, 0], 0, None
    for batch in reference.stream([row[0] for row in rows], batch_size=64):
        if not batch.positions:
            continue
        labels = np.array([int(rows[i][1]) for i in batch.positions])
        first = batch.images if first is None else first
        correct[0] += int((batch.probabilities.argmax(1) == labels).sum())  # type: ignore[union-attr]
        correct[1] += int((int8(batch.images).argmax(1) == labels).sum())
        seen += len(labels)
    if first is None:
        raise UsageError("none of the run's validation images can be read here", hint="export without --int8")
    return [c / seen for c in correct], seen, first[:SPEED_BATCH]


def _speed(engine: Engine, batch: np.ndarray) -> float:
    """Images per second on one batch (best of a few runs, after a warm-up)."""
    engine(batch)
    best = float("inf")
    for _ in range(SPEED_REPEATS):
        began = time.perf_counter()
        engine(batch)
        best = min(best, time.perf_counter() - began)
    return len(batch) / best

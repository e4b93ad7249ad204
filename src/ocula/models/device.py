"""Where training runs: ``--device auto|cpu|cuda|mps``, and the mixed precision that goes with it.

``auto`` is the best device present (CUDA, then Apple's MPS, then the CPU). On CUDA the forward
pass runs under autocast, in bfloat16 where the GPU supports it, else float16 with a gradient
scaler; on the CPU and MPS in float32. Inputs move with ``non_blocking`` from pinned memory.
CPU is the tested default; the CUDA branches run only where a GPU is present.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ocula.errors import UsageError, unknown

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def present() -> list[str]:
    """The devices this machine has, best first."""
    found = [f"cuda ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)})"] if torch.cuda.is_available() else []
    return found + (["mps"] if _mps() else []) + ["cpu"]


@dataclass(frozen=True)
class Device:
    """A resolved device and how it trains."""

    torch: torch.device
    dtype: torch.dtype | None  # autocast dtype, None for float32

    @property
    def type(self) -> str:
        return self.torch.type

    @property
    def pin_memory(self) -> bool:
        return self.type == "cuda"

    def describe(self) -> str:
        if self.type == "cuda":
            name = torch.cuda.get_device_name(self.torch)
            precision = {torch.bfloat16: "bfloat16", torch.float16: "float16 with a gradient scaler"}[self.dtype]
            return f"cuda ({name}), mixed precision {precision}"
        return f"{self.type}, float32"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Mixed precision for the forward pass on CUDA; nothing elsewhere."""
        if self.dtype is None:
            yield
        else:
            with torch.autocast("cuda", dtype=self.dtype):
                yield

    def scaler(self) -> torch.amp.GradScaler | None:
        """float16 needs its gradients scaled; bfloat16 and float32 do not."""
        return torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def put(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.type == "cpu" else tensor.to(self.torch, non_blocking=True)


CPU = Device(torch.device("cpu"), None)


def resolve(name: str) -> Device:
    """``auto`` -> the best device present; an asked-for device that is absent is a one-line error."""
    if name not in DEVICES:
        raise unknown("device", name, DEVICES)
    cuda, mps = torch.cuda.is_available(), _mps()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        build = f"torch {torch.__version__}" + (" (a CPU-only build)" if torch.version.cuda is None else "")
        raise UsageError(f"--device {name}: no {name.upper()} device found; this machine has {', '.join(present())} "
                         f"with {build}", hint="use --device cpu (or auto)")
    if name == "cuda":
        return Device(torch.device("cuda"), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return Device(torch.device(name), None)

"""The baseline for ``ocula serve``: the image-classification server a user writes from the
FastAPI and timm docs, serving the same run's weights with plain eager PyTorch.

    python benchmarks/baseline_server.py RUN --port 8081          # async def endpoint (the default)
    python benchmarks/baseline_server.py RUN --port 8082 --sync   # plain def endpoint, thread pool

It speaks the same contract as ``ocula serve``: ``GET /ping``, and ``POST /invocations`` with
the raw JPEG bytes (``Content-Type: image/jpeg``) answering the JSON list of class
probabilities. The model is timm ``tf_efficientnet_lite0`` with RUN's ``model/weights.pt``,
in eval mode under ``torch.inference_mode()``, one image per request; preprocessing is the
card's evaluation transform written with PIL + torchvision: Resize(shorter side to
round(input_size / crop_pct), bicubic), CenterCrop(input_size), ToTensor, Normalize(mean, std).
It imports nothing from ocula.

Why the ``async def`` endpoint that does the work inline is the fair (strong) baseline: it is
the pattern of the FastAPI/ML-serving tutorials, and on a small CPU box it is also the faster of
the two plain variants. The event loop runs one request at a time, so PyTorch's intra-op threads
(its default, one per core) own the cores during each forward pass, and every forward pass runs
on the same (main) thread with the same OpenMP team. The ``--sync`` variant (a plain ``def``
endpoint, which FastAPI runs in its 40-thread pool) looks more concurrent, but each pool thread
that runs a forward pass gets its own OpenMP team asking for every core: several passes run at
once on 2 cores, the teams' spinning threads oversubscribe them, and decoding contends for the
GIL. Measured on the 2-core benchmark machine, ``--sync`` is clearly slower at concurrency 1
(p50 about 60 ms against 40; a forward pass off the main thread took about twice as long) and
no better at 8 (throughput and p99 within run-to-run noise of the ``async def`` variant).
``benchmarks/serve_load.py`` measures both and compares ocula with the better one on each figure.

Torch's thread count is left at its default, as a user would leave it.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Request  # module level: the endpoints' annotations are resolved here


def build_app(run: str, *, sync: bool = False):
    import timm
    import torch
    import torchvision.transforms as T
    from PIL import Image

    model_dir = Path(run) / "model"
    card = json.loads((model_dir / "card.json").read_text())
    model = timm.create_model(card.get("arch", "tf_efficientnet_lite0"), num_classes=len(card["labels"]))
    model.load_state_dict(torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True))
    model.eval()

    size = card["input_size"]
    transform = T.Compose([
        T.Resize(round(size / card["crop_pct"]), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(card["mean"], card["std"]),
    ])

    def predict(data: bytes) -> list[float]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        x = transform(image).unsqueeze(0)
        with torch.inference_mode():
            probabilities = model(x).softmax(dim=1)[0]
        return probabilities.tolist()

    app = FastAPI(title="baseline: FastAPI + timm")

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    if sync:
        @app.post("/invocations")
        def invocations(body: Annotated[bytes, Body(media_type="image/jpeg")]):
            return predict(body)
    else:
        @app.post("/invocations")
        async def invocations(request: Request):
            return predict(await request.body())

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory with model/weights.pt and model/card.json")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--sync", action="store_true", help="a plain def endpoint (FastAPI's thread pool)")
    args = parser.parse_args()
    app = build_app(args.run, sync=args.sync)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

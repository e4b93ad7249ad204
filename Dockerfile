# ocula as a SageMaker training and inference image (CPU). SageMaker runs `<image> train` and
# `<image> serve`; the entry point maps them to `ocula sagemaker train|serve` (src/ocula/sagemaker.py).
#
#   docker build -t ocula:cpu .
#   docker run --rm -v $PWD/opt-ml:/opt/ml ocula:cpu train      # the contract, locally
#   docker run --rm -v $PWD/opt-ml:/opt/ml -p 8080:8080 ocula:cpu serve
#
# CUDA variant: start FROM an nvidia/cuda runtime image with Python 3.11 and install the CUDA build
# of torch/torchvision first (pip install torch==2.9.* torchvision==0.24.* --index-url
# https://download.pytorch.org/whl/cu126); the rest is the same. (Not built or tested here: the
# machine this was written on has no Docker and no GPU.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    OCULA_CACHE_DIR=/tmp/ocula-cache HF_HUB_OFFLINE=1
WORKDIR /opt/ocula
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu . \
    && python -c "import ocula, torch, timm, onnxruntime"

EXPOSE 8080
ENTRYPOINT ["ocula", "sagemaker"]
CMD ["serve"]

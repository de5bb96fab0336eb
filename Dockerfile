# syntax=docker/dockerfile:1
# Switchyard's container image: docker build -t switchyard:0.1.0 .
# The builder installs switchyard and its dependencies into a venv, compiling the request path
# with mypyc (setup.py): it is the full python:3.11 image, which has gcc, with the same Python
# in the same place as the slim one. The final image is python:3.11-slim plus that venv, run as
# an unprivileged user. Pin digests for reproducible builds (the same Python version in both):
# --build-arg BUILDER_IMAGE=python:3.11@sha256:... --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim
ARG BUILDER_IMAGE=python:3.11

FROM ${BUILDER_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# Optional extras, e.g. --build-arg EXTRAS="[tracing]" for OpenTelemetry spans.
ARG EXTRAS=""
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# A regular (not editable) install: the final stage copies only /opt/venv. pip byte-compiles the
# package, so nothing needs writing at run time (the pods run with a read-only root filesystem).
# The check fails the build if the request path was not compiled.
RUN /opt/venv/bin/pip install --no-cache-dir ".${EXTRAS}" \
    && /opt/venv/bin/python -c "import dynamo.nemo_switchyard as s; assert s.build() == 'compiled', s.build()"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="OpenAI-compatible LLM routing proxy: strong or weak model per prompt" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin switchyard
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# For plain Docker; Kubernetes uses the manifests' probes instead. /health answers without a key.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SWITCHYARD_HTTP_PORT', '8080'), timeout=2)"]
# Settings come as flags after the image name, SWITCHYARD_* variables or --config FILE.
ENTRYPOINT ["python", "-m", "dynamo.nemo_switchyard"]

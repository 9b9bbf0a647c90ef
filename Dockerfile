# syntax=docker/dockerfile:1
#
# Ledgerflow image: `ledgerflow api | worker | migrate | verify | temporal ...`.
#   docker build -t REGISTRY/ledgerflow:TAG .
# Load-test image (adds Locust and loadtests/):
#   docker build --target loadtest -t REGISTRY/ledgerflow-loadtest:TAG .
# The default target (the last stage) is the production runtime.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the distribution needs (no tests, no .git): the project metadata, its
# readme if present, and the sources with their SQL migrations.
COPY pyproject.toml README* ./
COPY src ./src
# The runtime dependencies only (neither the `dev` nor the `local` extra: no embedded
# PostgreSQL or Temporal binaries), into a relocatable virtualenv;
# pip byte-compiles, so the read-only root filesystem in Kubernetes is fine.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/ledgerflow --help >/dev/null

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# A fixed numeric uid/gid, so Kubernetes can verify runAsNonRoot (see deploy/k8s).
RUN groupadd --system --gid 10001 ledgerflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/ledgerflow \
      --create-home --shell /usr/sbin/nologin ledgerflow
COPY --from=build /opt/venv /opt/venv
WORKDIR /app

# Locust and the locustfiles, for deploy/k8s/components/locust.
FROM base AS loadtest
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "locust>=2.30"
COPY loadtests ./loadtests
USER 10001:10001
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
CMD ["--locustfile=/app/loadtests/locustfile.py"]

FROM base AS runtime
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["ledgerflow"]
CMD ["api"]

# layer-sandbox as a container: the same console script as the README, configured by environment.
#   docker build -t layer-sandbox .
#   docker run --rm -p 8088:8088 layer-sandbox            (any bearer token)
#   docker run --rm -p 8088:8088 -e LAYER_SANDBOX_TOKEN=t -e LAYER_SANDBOX_SEED=7 layer-sandbox
#   docker run --rm -v "$PWD/pacts:/pacts:ro" layer-sandbox verify-pact /pacts   (a consumer's pacts)
#   docker run --rm -p 8088:8088 -e LAYER_SANDBOX_STORE=redis://redis:6379/0 -e LAYER_SANDBOX_WORKERS=4 layer-sandbox
#       (state in a Redis that any number of such containers share; see docs/redis.md)
FROM python:3.11.7-slim-bookworm

# The release workflow passes the tag's version (and docker/metadata-action adds the other OCI
# labels: source, revision, created); a local build says "dev".
ARG VERSION=dev
LABEL org.opencontainers.image.title="layer-sandbox" \
      org.opencontainers.image.description="A local, stateful sandbox of Layer's customer-credits API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml setup.py MANIFEST.in README.md openapi.yaml ./
COPY sandbox ./sandbox
COPY fixtures ./fixtures
# A regular (not editable) install: the wheel carries openapi.yaml and fixtures/. With the `pact`
# extra (pact-python and its Rust FFI, about 2 MB), `verify-pact` works in the image too; with the
# `redis` extra (redis-py, pure Python), `--store redis://...` and `--workers`.
# DL3013 (pin versions) reads '.[pact,redis]' as a package from PyPI: it is this project, whose
# dependencies are bounded in pyproject.toml, as the plain `.` it accepted before.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[pact,redis]' \
    && rm -rf /build \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin sandbox \
    && install -d -o 10001 -g 10001 /data

# Where a --state-file / LAYER_SANDBOX_STATE_FILE can live, e.g. /data/state.json on a volume.
VOLUME ["/data"]

WORKDIR /
USER 10001:10001

ENV LAYER_SANDBOX_HOST=0.0.0.0 \
    LAYER_SANDBOX_PORT=8088
EXPOSE 8088

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/__sandbox/health' % os.environ.get('LAYER_SANDBOX_PORT', '8088'), timeout=2)"]

ENTRYPOINT ["layer-sandbox"]

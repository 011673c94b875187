# curate: the service (curate serve), the job drivers and the Ray nodes all use this image.
#   docker build -t curate .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake zlib1g-dev libbz2-dev liblzma-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY curate ./curate
COPY cli ./cli
COPY workers ./workers
COPY api ./api
# psycopg: the job store on Postgres (CURATE_DB_URL=postgresql+psycopg://...)
RUN pip wheel --wheel-dir /wheels . "psycopg[binary]>=3.1"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    RAY_USAGE_STATS_ENABLED=0 CURATE_HOME=/var/lib/curate/service
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 curate \
 && mkdir -p /var/lib/curate && chown curate /var/lib/curate
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
USER curate
WORKDIR /home/curate
EXPOSE 8000
ENTRYPOINT ["curate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

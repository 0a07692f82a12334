# convowatch: the `convowatch` command line (worker, produce, topics, demo, replay, schemas).
#   docker build -t convowatch:0.1.0 .
#   docker run --rm convowatch:0.1.0 demo --duration 30
# docker-compose.yml builds this image for the workers, the topic job and the traffic generator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency ships manylinux wheels for CPython 3.11: no compiler needed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY detectors ./detectors
COPY streams ./streams
RUN pip install . && rm -rf /src

# Run as an unprivileged user. Faust's data directory is /tmp/convowatch/<app id> (CONVOWATCH_DATA_DIR);
# nothing durable is written there (tables live in memory and in their changelogs).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin convowatch
USER convowatch
WORKDIR /home/convowatch

# /metrics must be reachable from other containers (Prometheus); the host default is 127.0.0.1.
ENV CONVOWATCH_METRICS_HOST=0.0.0.0
EXPOSE 9108

ENTRYPOINT ["convowatch"]
CMD ["--help"]

FROM python:3.11-slim-bookworm

# LISTEN: inside the container the webhook must be reachable through the published port; outside, the bot defaults
# to loopback.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    LISTEN=0.0.0.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
# The knowledge base is installed inside the package (bot.kbdata); set KNOWLEDGE_DIR to a mounted directory to
# replace it.
COPY knowledge ./knowledge
# The local project with its OCR extra, and the PostgreSQL driver for several replicas on one database (DATABASE_URL,
# compose.yaml); its dependency ranges are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install '.[ocr,postgres]' && rm -rf /app/bot /app/knowledge

RUN useradd --system --uid 10001 --home-dir /app doctor \
    && mkdir -p /data \
    && chown doctor /data
USER 10001
VOLUME ["/data"]
EXPOSE 8080

# The bot touches /data/heartbeat while it polls or serves the webhook (the webhook also answers /healthz).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["claude-doctor", "health"]

CMD ["claude-doctor", "run"]

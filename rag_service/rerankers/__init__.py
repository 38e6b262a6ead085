"""Rerankers, chosen by ``RAG_RETRIEVAL__RERANKER``; ``none`` keeps the fused order."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.errors import ConfigError
from rag_service.protocols import Reranker
from rag_service.rerankers.cross_encoder import CrossEncoderReranker
from rag_service.rerankers.fake import FakeReranker
from rag_service.settings import RetrievalSettings


def _cross_encoder(settings: RetrievalSettings) -> Reranker:
    return CrossEncoderReranker(settings.reranker_model)


def _fake(settings: RetrievalSettings) -> Reranker:
    return FakeReranker()


RERANKERS: dict[str, Callable[[RetrievalSettings], Reranker]] = {
    "cross-encoder": _cross_encoder,
    "fake": _fake,
}


def build_reranker(settings: RetrievalSettings) -> Reranker | None:
    if settings.reranker == "none":
        return None
    try:
        factory = RERANKERS[settings.reranker]
    except KeyError:
        valid = ", ".join(["none", *sorted(RERANKERS)])
        raise ConfigError(f"unknown reranker {settings.reranker!r}; valid: {valid}") from None
    return factory(settings)

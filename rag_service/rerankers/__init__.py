"""Rerankers, chosen by ``RAG_RETRIEVAL__RERANKER``; ``none`` keeps the fused order."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.errors import ConfigError
from rag_service.protocols import Embedder, Reranker
from rag_service.rerankers.cross_encoder import CrossEncoderReranker
from rag_service.rerankers.fake import FakeReranker
from rag_service.settings import Settings


def _cross_encoder(settings: Settings, embedder: Embedder) -> Reranker:
    return CrossEncoderReranker(settings.retrieval.reranker_model)


def _judge(settings: Settings, embedder: Embedder) -> Reranker:
    # Imported here: the judge's module brings llama.cpp's worker, which only this one needs.
    from rag_service.judging import own_judge
    from rag_service.rerankers.judge import JudgeReranker
    from rag_service.similarity import SentenceSimilarity

    return JudgeReranker(
        own_judge(settings), SentenceSimilarity(embedder), settings.judge.passage_tokens
    )


def _fake(settings: Settings, embedder: Embedder) -> Reranker:
    return FakeReranker()


RERANKERS: dict[str, Callable[[Settings, Embedder], Reranker]] = {
    "cross-encoder": _cross_encoder,
    "judge": _judge,
    "fake": _fake,
}


def build_reranker(settings: Settings, embedder: Embedder) -> Reranker | None:
    """``embedder``: the queries' (the judge reads the sentences nearest the query)."""
    reranker = settings.retrieval.reranker
    if reranker == "none":
        return None
    try:
        factory = RERANKERS[reranker]
    except KeyError:
        valid = ", ".join(["none", *sorted(RERANKERS)])
        raise ConfigError(f"unknown reranker {reranker!r}; valid: {valid}") from None
    return factory(settings, embedder)

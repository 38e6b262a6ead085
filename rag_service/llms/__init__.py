"""LLM backends by name; built-ins and the test fake are registered the same way."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.errors import ConfigError
from rag_service.protocols import LLM
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity


def _extractive(settings: Settings, sentences: SentenceSimilarity | None) -> LLM:
    from rag_service.llms.extractive import ExtractiveAnswerer

    by_similarity = sentences if settings.answer.extractive_by_similarity else None
    return ExtractiveAnswerer(settings.answer.extractive_sentences, similarity=by_similarity)


def _openai(settings: Settings, sentences: SentenceSimilarity | None) -> LLM:
    from rag_service.llms.openai import OpenAICompatibleLLM

    return OpenAICompatibleLLM(settings.llm)


def _llamacpp(settings: Settings, sentences: SentenceSimilarity | None) -> LLM:
    from rag_service.llms.llamacpp import LlamaCppLLM

    return LlamaCppLLM(settings.llm, models_dir=settings.embedder.models_dir)


def _fake(settings: Settings, sentences: SentenceSimilarity | None) -> LLM:
    from rag_service.llms.fake import FakeLLM

    return FakeLLM()


# Each gets the settings and the sentence scorer (only the extractive answerer reads sentences).
LLMS: dict[str, Callable[[Settings, SentenceSimilarity | None], LLM]] = {
    "extractive": _extractive,
    "openai": _openai,
    "llamacpp": _llamacpp,
    "fake": _fake,
}


def build_llm(settings: Settings, sentences: SentenceSimilarity | None = None) -> LLM:
    try:
        factory = LLMS[settings.llm.backend]
    except KeyError:
        raise ConfigError(
            f"unknown LLM backend {settings.llm.backend!r}; valid: {', '.join(sorted(LLMS))}"
        ) from None
    return factory(settings, sentences)


def build_quoter(settings: Settings, sentences: SentenceSimilarity | None = None) -> LLM:
    """The extractive answerer as configured: it quotes the documents, so its citations stand."""
    return LLMS["extractive"](settings, sentences)


def build_fallback_llm(
    settings: Settings, sentences: SentenceSimilarity | None = None
) -> LLM | None:
    """What answers when the configured LLM fails (``RAG_LLM__FALLBACK``): the extractive
    answerer, which needs no model and cannot fail the same way."""
    return build_quoter(settings, sentences) if settings.llm.fallback else None

"""LLM backends by name; built-ins and the test fake are registered the same way."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.errors import ConfigError
from rag_service.protocols import LLM
from rag_service.settings import Settings


def _extractive(settings: Settings) -> LLM:
    from rag_service.llms.extractive import ExtractiveAnswerer

    return ExtractiveAnswerer(settings.answer.extractive_sentences)


def _openai(settings: Settings) -> LLM:
    from rag_service.llms.openai import OpenAICompatibleLLM

    return OpenAICompatibleLLM(settings.llm)


def _llamacpp(settings: Settings) -> LLM:
    from rag_service.llms.llamacpp import LlamaCppLLM

    return LlamaCppLLM(settings.llm)


def _fake(settings: Settings) -> LLM:
    from rag_service.llms.fake import FakeLLM

    return FakeLLM()


LLMS: dict[str, Callable[[Settings], LLM]] = {
    "extractive": _extractive,
    "openai": _openai,
    "llamacpp": _llamacpp,
    "fake": _fake,
}


def build_llm(settings: Settings) -> LLM:
    try:
        factory = LLMS[settings.llm.backend]
    except KeyError:
        raise ConfigError(
            f"unknown LLM backend {settings.llm.backend!r}; valid: {', '.join(sorted(LLMS))}"
        ) from None
    return factory(settings)


def build_fallback_llm(settings: Settings) -> LLM | None:
    """What answers when the configured LLM fails (``RAG_LLM__FALLBACK``): the extractive
    answerer, which needs no model and cannot fail the same way."""
    return LLMS["extractive"](settings) if settings.llm.fallback else None

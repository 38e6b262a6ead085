"""A deterministic stand-in for a reranker, for tests (as ``llms/fake.py`` is for an LLM): it
prefers shorter passages, so a test can predict the order it gives without a model."""

from __future__ import annotations

from collections.abc import Sequence

from rag_service.types import Chunk


class FakeReranker:
    name = "fake"

    def __init__(self) -> None:
        self.queries: list[str] = []  # every query it re-scored, for tests to inspect

    def warm_up(self) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""

    def rerank(self, query: str, candidates: Sequence[Chunk]) -> list[float]:
        self.queries.append(query)
        return [1 / (1 + len(chunk.text)) for chunk in candidates]

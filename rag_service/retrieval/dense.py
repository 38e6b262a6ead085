"""Dense retrieval: the query's vector against one generation's vectors in the store."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.protocols import Embedder, VectorStore
from rag_service.types import ScoredId


class DenseRetriever:
    def __init__(self, embedder: Embedder, store: VectorStore, generation: int) -> None:
        self._embedder = embedder
        self._store = store
        self._generation = generation

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        return self._store.search(self._embedder.embed_query(query), k, self._generation, accept)

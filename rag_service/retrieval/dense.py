"""Dense retrieval: the query's vector against one generation's vectors in the store."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.protocols import Embedder, Vectors, VectorStore
from rag_service.retrieval.centering import QueryCentering
from rag_service.retrieval.language import query_language
from rag_service.types import ScoredId


class DenseRetriever:
    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        generation: int,
        centering: QueryCentering | None = None,
    ) -> None:
        self._embedder = embedder
        self._store = store
        self._generation = generation
        self._centering = centering

    def query_vector(self, query: str) -> Vectors:
        """The query's vector as it is searched (centered for its language, if configured)."""
        vector = self._embedder.embed_query(query)
        if self._centering is not None:
            vector = self._centering.apply(vector, query_language(query))
        return vector

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        return self._store.search(self.query_vector(query), k, self._generation, accept)

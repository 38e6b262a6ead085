"""Serving: the committed index held open for each request, following new generations as
reindexes commit them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rag_service.errors import IndexNotReady
from rag_service.index_state import IndexPointer, IndexState, index_fingerprint
from rag_service.protocols import Embedder, Reranker, VectorStore
from rag_service.retrieval.bm25 import Bm25Index, Bm25Retriever
from rag_service.retrieval.dense import DenseRetriever
from rag_service.retrieval.hybrid import HybridRetriever
from rag_service.retrieval.results import RetrievedPassage, SearchFilters, SearchTimings
from rag_service.settings import Settings
from rag_service.stores import open_store


@dataclass(frozen=True)
class ServedIndex:
    pointer: IndexPointer
    store: VectorStore
    bm25: Bm25Index
    retriever: HybridRetriever

    def idf(self, tokens: list[str]) -> dict[str, float]:
        """How rare each token is in this generation (see ``Bm25Index.idf``)."""
        return {token: self.bm25.idf(token) for token in tokens}


@dataclass(frozen=True)
class SearchResult:
    passages: tuple[RetrievedPassage, ...]
    pointer: IndexPointer
    language: str
    timings: SearchTimings


_NO_INDEX = "no index has been built yet; run `rag reindex`"


class SearchService:
    """Searches the committed index and follows the pointer to each new generation.

    Switching waits for searches in flight on the old store to finish, then closes it before
    opening the new one: an embedded Chroma client caches its vector index in memory, and only
    a client opened after another process's reindex sees what that reindex wrote.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: Reranker | None = None,
        on_timings: Callable[[SearchTimings], None] | None = None,
    ) -> None:
        """``on_timings`` receives each search's stage timings: the metrics' feed."""
        self._settings = settings
        self._embedder = embedder
        self._reranker = reranker
        self._state = IndexState(settings.data_dir)
        self._fingerprint = index_fingerprint(settings)
        self._switch = threading.Condition()
        self._in_flight = 0
        self._stamp: tuple[int, int] | None = None
        self._served: ServedIndex | None = None
        self._on_timings = on_timings
        self.loads = 0  # generations loaded so far: one per reindex this process followed

    def _load(self) -> ServedIndex:
        pointer = self._state.current()
        if pointer is None:
            raise IndexNotReady(_NO_INDEX)
        if pointer.fingerprint != self._fingerprint:
            raise IndexNotReady(
                "the index was built with other embedding or chunking settings; "
                "run `rag reindex` with this service's settings"
            )
        backend = self._settings.retrieval.bm25_backend
        bm25_path = self._state.bm25_path(pointer.collection, pointer.generation, backend)
        if not bm25_path.exists():
            raise IndexNotReady(f"the {backend} index is missing; run `rag reindex`")
        bm25 = Bm25Index.load(bm25_path, backend)
        store = open_store(self._settings, pointer.collection)
        retriever = HybridRetriever(
            Bm25Retriever(bm25),
            DenseRetriever(self._embedder, store, pointer.generation),
            store,
            self._settings.retrieval,
            self._reranker,
        )
        return ServedIndex(pointer, store, bm25, retriever)

    @contextmanager
    def current(self) -> Iterator[ServedIndex]:
        """The committed index, held open (not switched away from) while the block runs."""
        stamp = self._state.pointer_stamp()
        if stamp is None:
            raise IndexNotReady(_NO_INDEX)
        with self._switch:
            if stamp != self._stamp or self._served is None:
                self._switch.wait_for(lambda: self._in_flight == 0)
                if self._served is not None:
                    self._served.store.close()
                    self._served = None
                self._served, self._stamp = self._load(), stamp
                self.loads += 1
            served = self._served
            self._in_flight += 1
        try:
            yield served
        finally:
            with self._switch:
                self._in_flight -= 1
                self._switch.notify_all()

    @property
    def served_pointer(self) -> IndexPointer | None:
        """The generation this process serves now (it may lag the committed one until the next
        request notices the new pointer)."""
        served = self._served
        return served.pointer if served is not None else None

    def committed_pointer(self) -> IndexPointer | None:
        return self._state.current()

    def close(self) -> None:
        with self._switch:
            self._switch.wait_for(lambda: self._in_flight == 0)
            if self._served is not None:
                self._served.store.close()
            self._served, self._stamp = None, None

    def search(self, query: str, top_k: int, filters: SearchFilters | None = None) -> SearchResult:
        with self.current() as served:
            return self.search_served(served, query, top_k, filters)

    def search_served(
        self, served: ServedIndex, query: str, top_k: int, filters: SearchFilters | None = None
    ) -> SearchResult:
        """Search a generation the caller holds open with ``current()``, so that whatever else
        it reads for the same request (the idf of the question's words) is of that generation."""
        retrieval = served.retriever.search(query, top_k, filters)
        if self._on_timings is not None:
            self._on_timings(retrieval.timings)
        return SearchResult(
            retrieval.passages, served.pointer, retrieval.language, retrieval.timings
        )

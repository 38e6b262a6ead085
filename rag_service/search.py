"""Search over the committed index, following new generations as reindexes commit them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rag_service.errors import IndexNotReady
from rag_service.index import IndexPointer, IndexState, index_fingerprint
from rag_service.protocols import Embedder, VectorStore
from rag_service.settings import Settings
from rag_service.stores import open_store
from rag_service.types import Chunk


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    score: float
    dense_rank: int
    dense_score: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    pointer: IndexPointer
    timings_ms: dict[str, float]


class SearchService:
    """Searches the committed index and follows the pointer to each new generation.

    Switching waits for searches in flight on the old store to finish, then closes it before
    opening the new one: an embedded Chroma client caches its vector index in memory, and only
    a client opened after another process's reindex sees what that reindex wrote.
    """

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self._settings = settings
        self._embedder = embedder
        self._state = IndexState(settings.data_dir)
        self._fingerprint = index_fingerprint(settings)
        self._switch = threading.Condition()
        self._in_flight = 0
        self._stamp: tuple[int, int] | None = None
        self._served: tuple[IndexPointer, VectorStore] | None = None

    def _load(self) -> tuple[IndexPointer, VectorStore]:
        pointer = self._state.current()
        if pointer is None:
            raise IndexNotReady("no index has been built yet; run `rag reindex`")
        if pointer.fingerprint != self._fingerprint:
            raise IndexNotReady(
                "the index was built with other embedding or chunking settings; "
                "run `rag reindex` with this service's settings"
            )
        return pointer, open_store(self._settings, pointer.collection)

    @contextmanager
    def current(self) -> Iterator[tuple[IndexPointer, VectorStore]]:
        """The committed index, held open (not switched away from) while the block runs."""
        stamp = self._state.pointer_stamp()
        if stamp is None:
            raise IndexNotReady("no index has been built yet; run `rag reindex`")
        with self._switch:
            if stamp != self._stamp or self._served is None:
                self._switch.wait_for(lambda: self._in_flight == 0)
                if self._served is not None:
                    self._served[1].close()
                    self._served = None
                self._served, self._stamp = self._load(), stamp
            served = self._served
            self._in_flight += 1
        try:
            yield served
        finally:
            with self._switch:
                self._in_flight -= 1
                self._switch.notify_all()

    def close(self) -> None:
        with self._switch:
            self._switch.wait_for(lambda: self._in_flight == 0)
            if self._served is not None:
                self._served[1].close()
            self._served, self._stamp = None, None

    def search(self, query: str, top_k: int) -> SearchResult:
        started = time.perf_counter()
        vector = self._embedder.embed_query(query)
        embedded = time.perf_counter()
        with self.current() as (pointer, store):
            scored = store.search(vector, top_k, pointer.generation)
        done = time.perf_counter()
        hits = [
            SearchHit(s.chunk, s.score, dense_rank=rank, dense_score=s.score)
            for rank, s in enumerate(scored, start=1)
        ]
        timings = {
            "embed": (embedded - started) * 1000,
            "search": (done - embedded) * 1000,
            "total": (done - started) * 1000,
        }
        return SearchResult(hits, pointer, timings)

"""Serving: the committed index held open for each request, following new generations as
reindexes commit them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rag_service.collections import DEFAULT, Collection, Collections, check_name, store_name
from rag_service.errors import IndexNotReady, NotFound
from rag_service.index_state import IndexPointer, IndexState, index_fingerprint
from rag_service.protocols import Embedder, IndexRecords, Reranker, VectorStore
from rag_service.retrieval.bm25 import Bm25Index, Bm25Retriever
from rag_service.retrieval.centering import centering_for
from rag_service.retrieval.dense import DenseRetriever
from rag_service.retrieval.hybrid import HybridRetriever
from rag_service.retrieval.results import RetrievedPassage, SearchFilters, SearchTimings
from rag_service.settings import Settings
from rag_service.state import open_state
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


@dataclass(eq=False)
class _Held:
    """A loaded generation and who is reading it; closed once retired and left by its readers."""

    served: ServedIndex
    stamp: Hashable
    readers: int = 0
    retired: bool = False


class SearchService:
    """Searches the committed index and follows the pointer to each new generation.

    A new generation is loaded once, by the first request that notices the new pointer, beside
    the old one (each has its own store client: an embedded Chroma client caches its vector index
    in memory, and only a client opened after another process's reindex sees what it wrote).
    Requests arriving meanwhile keep reading the old generation; once the new one is loaded,
    new requests get it, and the old one is closed when its last reader leaves. Nobody waits for
    other requests to finish, only (on the very first load) for a load in progress, and
    ``close``, which waits for the readers to leave.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: Reranker | None = None,
        on_timings: Callable[[SearchTimings], None] | None = None,
        *,
        records: IndexRecords | None = None,
        name: str = DEFAULT,
    ) -> None:
        """``on_timings`` receives each search's stage timings: the metrics' feed. ``records``
        are the index records of the collection ``name`` (default: the files of the
        ``default`` collection in the data directory)."""
        self._settings = settings
        self._embedder = embedder
        self._reranker = reranker
        self.state = records or IndexState(settings.data_dir)
        self._fingerprint = index_fingerprint(settings)
        self._lock = threading.Condition()
        self._held: _Held | None = None
        self._loading = False
        self._closed = False
        self._unclosed = 0  # generations loaded whose store is not closed yet
        self._name = name
        self._on_timings = on_timings
        self.loads = 0  # generations loaded so far: one per reindex this process followed

    @property
    def embedder(self) -> Embedder:
        """The embedder queries are searched with (answering compares sentences with it)."""
        return self._embedder

    def _stamped_pointer(self) -> tuple[Hashable, IndexPointer]:
        """The committed pointer and the stamp of that very file (a commit may land between)."""
        while True:
            stamp = self.state.pointer_stamp()
            pointer = self.state.current()
            if stamp is None or pointer is None:
                raise IndexNotReady(_NO_INDEX)
            if self.state.pointer_stamp() == stamp:
                return stamp, pointer

    def _load(self) -> tuple[Hashable, ServedIndex]:
        stamp, pointer = self._stamped_pointer()
        if pointer.fingerprint != self._fingerprint:
            raise IndexNotReady(
                "the index was built with other embedding or chunking settings; "
                "run `rag reindex` with this service's settings"
            )
        backend = self._settings.retrieval.bm25_backend
        bm25_path = self.state.lexical_index(pointer, backend)
        if not bm25_path.exists():
            raise IndexNotReady(f"the {backend} index is missing; run `rag reindex`")
        bm25 = Bm25Index.load(bm25_path, backend)
        store = open_store(self._settings, pointer.collection)
        retriever = HybridRetriever(
            Bm25Retriever(bm25),
            DenseRetriever(
                self._embedder,
                store,
                pointer.generation,
                centering_for(
                    self._settings.embedder.model,
                    {
                        "en": self._settings.retrieval.query_centering_en,
                        "zh": self._settings.retrieval.query_centering_zh,
                    },
                ),
            ),
            store,
            self._settings.retrieval,
            self._reranker,
        )
        return stamp, ServedIndex(pointer, store, bm25, retriever)

    def _acquire(self) -> _Held:
        with self._lock:
            while True:
                if self._closed:  # its collection was deleted while the request was on its way
                    raise NotFound(f"no collection {self._name!r}; GET /v1/collections lists them")
                stamp = self.state.pointer_stamp()
                if stamp is None:
                    raise IndexNotReady(_NO_INDEX)
                held = self._held
                # Current, or another request is loading the next one: read what is loaded.
                if held is not None and (held.stamp == stamp or self._loading):
                    held.readers += 1
                    return held
                if not self._loading:
                    self._loading = True
                    break
                self._lock.wait()  # nothing loaded yet: the first load is under way
        try:
            stamp, served = self._load()  # outside the lock: readers go on meanwhile
        except BaseException:
            with self._lock:
                self._loading = False
                self._lock.notify_all()
            raise
        fresh = _Held(served, stamp, readers=1)
        with self._lock:
            self._unclosed += 1
            old, self._held = self._held, fresh
            self._loading = False
            self.loads += 1
            self._lock.notify_all()
        if old is not None:
            self._retire(old)
        return fresh

    def _retire(self, held: _Held) -> None:
        with self._lock:
            held.retired = True
            idle = held.readers == 0
        if idle:
            self._close_store(held)

    def _release(self, held: _Held) -> None:
        with self._lock:
            held.readers -= 1
            idle = held.retired and held.readers == 0
        if idle:
            self._close_store(held)

    def _close_store(self, held: _Held) -> None:
        held.served.store.close()
        with self._lock:
            self._unclosed -= 1
            self._lock.notify_all()

    @contextmanager
    def current(self) -> Iterator[ServedIndex]:
        """The committed index, held open (not closed) while the block runs."""
        held = self._acquire()
        try:
            yield held.served
        finally:
            self._release(held)

    @property
    def served_pointer(self) -> IndexPointer | None:
        """The generation this process serves now (it may lag the committed one until the next
        request notices the new pointer)."""
        held = self._held
        return held.served.pointer if held is not None else None

    def committed_pointer(self) -> IndexPointer | None:
        return self.state.current()

    def close(self) -> None:
        """Stop serving: later requests get ``NotFound``; returns once the requests reading
        have left and every generation's store is closed (the caller may then drop them)."""
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: not self._loading)
            held, self._held = self._held, None
        if held is not None:
            self._retire(held)
        with self._lock:
            self._lock.wait_for(lambda: self._unclosed == 0)

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


class Library:
    """The search service of every collection, opened on a collection's first request and
    closed when it is deleted. Each follows its own collection's generations."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        reranker: Reranker | None = None,
        on_timings: Callable[[SearchTimings], None] | None = None,
    ) -> None:
        self.state = open_state(settings)
        self.collections = Collections(settings.data_dir, settings.corpus_dir, self.state)
        self._settings, self._embedder = settings, embedder
        self._reranker, self._on_timings = reranker, on_timings
        self._services: dict[str, SearchService] = {DEFAULT: self._open(DEFAULT)}
        self._lock = threading.Lock()

    def _open(self, name: str) -> SearchService:
        records = self.collections.get(name).state
        return SearchService(
            self._settings,
            self._embedder,
            self._reranker,
            self._on_timings,
            records=records,
            name=name,
        )

    @property
    def default(self) -> SearchService:
        return self._services[DEFAULT]

    def search(self, name: str) -> SearchService:
        """``NotFound`` if there is no such collection (any more: another process may have
        deleted it, so this is checked on every call: one small file read in the file layout,
        the kept copy of the table in PostgreSQL's, read again only after a change)."""
        name = check_name(name)
        with self._lock:  # a deletion in this process unlists and forgets under it too
            if self.collections.exists(name):
                service = self._services.get(name)
                if service is None:
                    service = self._services[name] = self._open(name)
                return service
        self.forget(name)
        raise NotFound(f"no collection {name!r}; GET /v1/collections lists them")

    def forget(self, name: str) -> None:
        """Stop serving a deleted collection: returns once its requests in flight are done
        with its index."""
        if name == DEFAULT:
            return
        with self._lock:
            service = self._services.pop(name, None)
        if service is not None:
            service.close()

    def remove(self, collection: Collection) -> None:
        """Delete a (non-default) collection, its index and, if managed, its documents; the
        caller holds its reindex lock. Unlisted first, so that new requests get a 404; then
        those in flight finish reading; only then are its stores dropped and its files gone."""
        with self._lock:  # together: no request can open it again in between
            self.collections.unlist(collection)
            service = self._services.pop(collection.name, None)
        if service is not None:
            service.close()
        names = {
            store_name(
                self._settings.store.collection_prefix,
                collection.name,
                index_fingerprint(self._settings),
            )
        }
        if (pointer := collection.state.current()) is not None:
            names.add(pointer.collection)
        try:
            for name in names:
                store = open_store(self._settings, name)
                try:
                    store.drop()
                finally:
                    store.close()
        except BaseException:
            self.collections.relist(collection)  # the store is down: the delete can be retried
            raise
        self.collections.remove_files(collection)

    def close(self) -> None:
        with self._lock:
            services, self._services = list(self._services.values()), {}
        for service in services:
            service.close()

"""Chroma as the vector store: one collection per index fingerprint, generations in metadata.

Two clients: the embedded ``PersistentClient`` (one machine, files under ``data_dir``) and the
``HttpClient`` of a Chroma server, which any number of API processes and reindexes can share.
Vectors are always passed in explicitly; Chroma's default embedding function would download a
model, which this service must never do.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaClientSettings

from rag_service.errors import ConfigError, IndexNotReady, StoreUnavailable
from rag_service.protocols import Vectors
from rag_service.settings import StoreSettings
from rag_service.types import Chunk, ScoredId

# `retired_in` of a chunk that is still live. Chroma stores metadata integers as int64.
LIVE = 2**62
_ADDED = "added_in"
_RETIRED = "retired_in"


def persistent_client(path: Path) -> ClientAPI:
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(
        path=str(path), settings=ChromaClientSettings(anonymized_telemetry=False)
    )


# Path spellings (``/data/chroma``, ``/data/chroma/.``, ...) held by open private clients.
_spellings_lock = threading.Lock()
_spellings_in_use: set[str] = set()


def private_persistent_client(path: Path) -> tuple[ClientAPI, Callable[[], None]]:
    """A client with a Chroma system of its own, and the function that releases it.

    Chroma shares one system (and its in-memory vector index, loaded once) between all clients of
    a path in a process, so a client opened while another is alive would not see what another
    process wrote since. Chroma keys that sharing on the path as spelled: each open client gets a
    spelling no other open client uses, so a new generation can be opened while the old one
    still serves. Spellings are reused once released, so they stay short.
    """
    path.mkdir(parents=True, exist_ok=True)
    with _spellings_lock:
        spelling = str(path)
        while spelling in _spellings_in_use:
            spelling = f"{spelling}/."
        _spellings_in_use.add(spelling)

    def release() -> None:
        with _spellings_lock:
            _spellings_in_use.discard(spelling)

    try:
        client = chromadb.PersistentClient(
            path=spelling, settings=ChromaClientSettings(anonymized_telemetry=False)
        )
    except BaseException:
        release()
        raise
    return client, release


def http_client(settings: StoreSettings) -> ClientAPI:
    """A client of the Chroma server the settings name; `StoreUnavailable` if it does not answer."""
    url = settings.chroma_url()
    headers: dict[str, str] = {}
    if token := settings.chroma_auth_token.get_secret_value():
        bearer = settings.chroma_auth_header == "Authorization"
        headers[settings.chroma_auth_header] = f"Bearer {token}" if bearer else token
    # Chroma's client has no timeout and its constructor already calls the server: ask first,
    # with one, so a hung server fails here in seconds instead of holding the caller for ever.
    try:
        httpx.get(
            f"{url}/api/v2/heartbeat", headers=headers, timeout=settings.chroma_timeout_s
        ).raise_for_status()
        client = chromadb.HttpClient(
            host=settings.chroma_host,
            port=settings.chroma_port,
            ssl=settings.chroma_ssl,
            headers=headers,
            settings=ChromaClientSettings(anonymized_telemetry=False),
        )
    except (httpx.HTTPError, ValueError) as exc:
        where = f"{settings.chroma_host}:{settings.chroma_port}"
        raise StoreUnavailable(f"the Chroma server at {where} does not answer: {exc!r}") from exc
    # The same unbounded wait applies to every later request; the session is the client's own
    # (private, hence checked): bound it too.
    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise ConfigError(f"chromadb {chromadb.__version__}: cannot bound request timeouts")
    session.timeout = httpx.Timeout(settings.chroma_timeout_s)
    return client


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _server_errors(
    method: Callable[Concatenate[ChromaStore, _P], _R],
) -> Callable[Concatenate[ChromaStore, _P], _R]:
    """A Chroma server that went away (or hangs) is `StoreUnavailable`, whatever the call."""

    @functools.wraps(method)
    def call(self: ChromaStore, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except httpx.TransportError as exc:
            where = self._client.get_settings()
            raise StoreUnavailable(
                f"the Chroma server at {where.chroma_server_host}:{where.chroma_server_http_port} "
                f"does not answer: {exc!r}"
            ) from exc

    return call  # type: ignore[return-value]  # functools.wraps' type hides the signature


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ChromaStore:
    def __init__(
        self,
        client: ClientAPI,
        collection_name: str,
        *,
        create: bool,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.collection_name = collection_name
        self._create = create
        self._on_close = on_close

    @cached_property
    def _collection(self) -> chromadb.Collection:
        if self._create:
            return self._client.get_or_create_collection(
                self.collection_name,
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
        try:
            return self._client.get_collection(self.collection_name, embedding_function=None)
        except chromadb.errors.NotFoundError as exc:
            raise IndexNotReady(f"collection {self.collection_name!r} does not exist") from exc

    @cached_property
    def max_batch_size(self) -> int:
        return int(self._client.get_max_batch_size())

    @_server_errors
    def add(self, chunks: Sequence[Chunk], vectors: Vectors, generation: int) -> None:
        for offset, batch in enumerate(_batches(chunks, self.max_batch_size)):
            rows = vectors[offset * self.max_batch_size : offset * self.max_batch_size + len(batch)]
            self._collection.add(
                ids=[c.id for c in batch],
                embeddings=rows,
                documents=[c.text for c in batch],
                metadatas=[{**c.metadata(), _ADDED: generation, _RETIRED: LIVE} for c in batch],
            )

    @_server_errors
    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        for batch in _batches(chunks, self.max_batch_size):
            self._collection.update(
                ids=[c.id for c in batch], metadatas=[c.metadata() for c in batch]
            )

    def _set(self, ids: Sequence[str], metadata: dict[str, int]) -> None:
        for batch in _batches(ids, self.max_batch_size):
            self._collection.update(ids=list(batch), metadatas=[metadata] * len(batch))

    def _ids_where(self, where: dict[str, Any]) -> list[str]:
        return list(self._collection.get(where=where, include=[])["ids"])

    def _delete(self, ids: Sequence[str]) -> None:
        for batch in _batches(ids, self.max_batch_size):
            self._collection.delete(ids=list(batch))

    @_server_errors
    def retire(self, ids: Collection[str], generation: int) -> None:
        self._set(sorted(ids), {_RETIRED: generation})

    @_server_errors
    def reset_uncommitted(
        self, committed: int, adopt: Collection[str], generation: int
    ) -> set[str]:
        pending = self._ids_where({_ADDED: {"$gt": committed}})
        adopted = sorted(i for i in pending if i in adopt)
        self._set(adopted, {_ADDED: generation})
        self._delete([i for i in pending if i not in adopt])
        unretired = self._ids_where(
            {"$and": [{_RETIRED: {"$gt": committed}}, {_RETIRED: {"$lt": LIVE}}]}
        )
        self._set(unretired, {_RETIRED: LIVE})
        return set(adopted)

    @_server_errors
    def purge_retired(self, up_to: int) -> int:
        ids = self._ids_where({_RETIRED: {"$lte": up_to}})
        self._delete(ids)
        return len(ids)

    @_server_errors
    def get(self, ids: Sequence[str]) -> list[Chunk]:
        found: dict[str, Chunk] = {}
        for batch in _batches(ids, self.max_batch_size):
            result = self._collection.get(ids=list(batch), include=["documents", "metadatas"])
            for chunk_id, doc, meta in zip(
                result["ids"],
                result["documents"] or [],
                result["metadatas"] or [],
                strict=True,
            ):
                found[chunk_id] = Chunk.from_record(chunk_id, doc or "", dict(meta))
        return [found[i] for i in ids if i in found]

    @_server_errors
    def search(
        self,
        vector: Vectors,
        k: int,
        generation: int,
        accept: Callable[[str], bool] | None = None,
    ) -> list[ScoredId]:
        # Chunks of other generations are filtered out after the search: they exist only around a
        # reindex and are few, so asking for a few more is cheaper than a metadata pre-filter.
        # Texts are not fetched here (that halves the query time); callers get the few they keep.
        # No count() first to cap n_results: Chroma returns what it has, and against a server
        # that saved one of the three round trips per search.
        n_results = k + 16
        while True:
            result = self._collection.query(
                query_embeddings=[vector.tolist()],
                n_results=n_results,
                include=["metadatas", "distances"],
            )
            hits = [
                ScoredId(chunk_id, 1.0 - distance)
                for chunk_id, meta, distance in zip(
                    result["ids"][0],
                    (result["metadatas"] or [[]])[0],
                    (result["distances"] or [[]])[0],
                    strict=True,
                )
                # A reader's in-memory HNSW can still hold rows another process just deleted.
                if meta is not None
                and int(meta[_ADDED]) <= generation < int(meta[_RETIRED])  # type: ignore[arg-type]
                and (accept is None or accept(str(meta["source"])))
            ]
            if len(hits) >= k or len(result["ids"][0]) < n_results:  # or nothing more to give
                return hits[:k]
            n_results *= 4

    @_server_errors
    def count(self) -> int:
        return int(self._collection.count())

    def close(self) -> None:
        """Release the client; once no client holds the path, the next one reloads from disk."""
        self.__dict__.pop("_collection", None)
        self._client.close()  # type: ignore[attr-defined]
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    @_server_errors
    def drop(self) -> None:
        with contextlib.suppress(chromadb.errors.NotFoundError):
            self._client.delete_collection(self.collection_name)
        self.__dict__.pop("_collection", None)

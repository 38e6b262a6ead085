"""Vector store backends, chosen by ``RAG_STORE__BACKEND``."""

from __future__ import annotations

from collections.abc import Callable

from rag_service.errors import ConfigError
from rag_service.protocols import VectorStore
from rag_service.settings import Settings
from rag_service.stores.chroma import ChromaStore, http_client, private_persistent_client


def _chroma(settings: Settings, collection_name: str, create: bool) -> VectorStore:
    # A system of its own, so a searcher can open the next generation while the old one serves.
    client, release = private_persistent_client(settings.data_dir / "chroma")
    return ChromaStore(client, collection_name, create=create, on_close=release)


def _chroma_http(settings: Settings, collection_name: str, create: bool) -> VectorStore:
    return ChromaStore(http_client(settings.store), collection_name, create=create)


STORES: dict[str, Callable[[Settings, str, bool], VectorStore]] = {
    "chroma": _chroma,
    "chroma-http": _chroma_http,
}


def open_store(settings: Settings, collection_name: str, *, create: bool = False) -> VectorStore:
    try:
        factory = STORES[settings.store.backend]
    except KeyError:
        raise ConfigError(
            f"unknown store backend {settings.store.backend!r}; valid: {', '.join(sorted(STORES))}"
        ) from None
    return factory(settings, collection_name, create)

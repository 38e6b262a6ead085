"""Where the service keeps its state, chosen by ``RAG_STATE__URL``: files under
``RAG_DATA_DIR`` (the default: no server to run) or PostgreSQL, which API replicas and the
reindex share so that none needs another's data folder.

``open_state(settings)`` gives the process's store; PostgreSQL's is opened once per URL and
shared by every part of the process (one pool, one LISTEN connection) until ``close_states()``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rag_service.errors import ConfigError
from rag_service.index_state import IndexState
from rag_service.keys import KeyStore
from rag_service.protocols import ApiKeys, CollectionRecords, IndexRecords, JobStore, StateStore
from rag_service.settings import Settings
from rag_service.state.file_jobs import FileJobStore

if TYPE_CHECKING:
    from rag_service.state.pg_state import PostgresState


class FileState:
    """Today's layout: every record is a file under the data directory."""

    backend = "files"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._jobs: FileJobStore | None = None

    def index(self, name: str, root: Path) -> IndexRecords:
        return IndexState(root)

    def collection_records(self) -> CollectionRecords:
        # Imported here, not at the top: collections.py imports this module (a FileState is
        # its default store).
        from rag_service.collections import FileCollectionRecords

        return FileCollectionRecords(self.data_dir)

    def keys(self) -> ApiKeys:
        return KeyStore(self.data_dir)

    def jobs(self) -> JobStore:
        if self._jobs is None:
            self._jobs = FileJobStore(self.data_dir / "jobs")
        return self._jobs

    def check(self) -> None:
        """Files need no server."""

    def close(self) -> None:
        """Nothing held open."""


_opened: dict[str, PostgresState] = {}
_opening = threading.Lock()


def open_state(settings: Settings) -> StateStore:
    backend = settings.state.backend
    if backend == "files":
        return FileState(settings.data_dir)
    if backend != "postgresql":
        raise ConfigError(
            f"RAG_STATE__URL: unknown scheme {backend!r}; use postgresql://… or leave it empty"
        )
    # psycopg is imported only when PostgreSQL is configured.
    from rag_service.state.pg_state import PostgresState

    url = settings.state.url.get_secret_value()
    with _opening:
        found = _opened.get(url)
        if found is None:
            found = _opened[url] = PostgresState(settings)
    return found


def close_states() -> None:
    """Close every PostgreSQL store this process opened (at shutdown, and between tests)."""
    with _opening:
        stores = list(_opened.values())
        _opened.clear()
    for store in stores:
        store.close()

"""The PostgreSQL state store: one Database (pool) and one Notifications listener per process,
handing out each part's records."""

from __future__ import annotations

from pathlib import Path

from rag_service.errors import StateUnavailable
from rag_service.index_state import IndexState
from rag_service.protocols import ApiKeys, CollectionRecords, IndexRecords, JobStore
from rag_service.settings import Settings
from rag_service.state.pg_collections import PostgresCollectionRecords
from rag_service.state.pg_index import PointerCache, PostgresIndexRecords
from rag_service.state.pg_jobs import PostgresJobStore
from rag_service.state.pg_keys import PostgresKeys
from rag_service.state.postgres import Database, Notifications


class PostgresState:
    backend = "postgresql"

    def __init__(self, settings: Settings) -> None:
        self.db = Database(settings.state)
        self.notes = Notifications(self.db, settings.state.retry_s)
        self.notes.wait_listening(settings.state.connect_timeout_s)
        self._pointers = PointerCache()
        self._collections = PostgresCollectionRecords(self.db, self.notes)
        self._keys = PostgresKeys(self.db, self.notes)
        self._jobs = PostgresJobStore(self.db, settings.data_dir / "jobs")

    def index(self, name: str, root: Path) -> IndexRecords:
        """``root``: the collection's local folder, for the caches (BM25 files, tokens)."""
        return PostgresIndexRecords(self.db, self.notes, name, IndexState(root), self._pointers)

    def collection_records(self) -> CollectionRecords:
        """The process's one copy, which every ``Collections`` shares."""
        return self._collections

    def keys(self) -> ApiKeys:
        """One per process: its copy of the key set serves every request."""
        return self._keys

    def jobs(self) -> JobStore:
        return self._jobs

    def check(self) -> None:
        # The listening connection notices an outage within a second: no need to wait out a
        # connection attempt's timeout to say so.
        if not self.notes.listening:
            raise StateUnavailable(f"PostgreSQL at {self.db.shown} is unavailable (reconnecting)")
        self.db.check()

    def close(self) -> None:
        self._jobs.close()
        self.notes.close()
        self.db.close()

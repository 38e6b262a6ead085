"""Which collections exist, in PostgreSQL: one row of ``rag_collections`` per listed
collection, so API replicas and the reindex, each with a data folder of its own, agree on them.

Every request asks whether its collection exists, so each process keeps a copy of the whole
table (collections are few) and reads it again only when a change was announced on topic
``collections`` or this process wrote one; while PostgreSQL is away it answers from that copy.
Naming a collection (checking that the name is free, then writing its record) holds a
transaction-scoped advisory lock and reads the table itself, not the copy: a name another host
took a moment ago, whose notice has not arrived yet, is seen.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from rag_service.state.postgres import Database, Notifications, Stamp, lock_key, notify

TOPIC = "collections"
_NAMING_LOCK = "collections:naming"

Records = dict[str, dict[str, Any]]


class PostgresCollectionRecords:
    """One per process (``PostgresState`` hands out the same one), shared by its threads."""

    def __init__(self, db: Database, notes: Notifications) -> None:
        self._db, self._notes = db, notes
        self._held = threading.local()  # the naming session of the thread holding it
        self._lock = threading.Lock()
        # This process's own changes, so that it reads them back before their notice arrives.
        self._writes = 0
        self._copy: tuple[tuple[Stamp, int], Records] | None = None

    def read(self, name: str) -> dict[str, Any] | None:
        return self._records().get(name)

    def names(self) -> list[str]:
        return sorted(self._records())

    def write(self, name: str, record: dict[str, Any]) -> None:
        self._change(
            "INSERT INTO rag_collections (name, record) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
            (name, Jsonb(record)),
        )

    def remove(self, name: str) -> None:
        self._change("DELETE FROM rag_collections WHERE name = %s", (name,))

    @contextlib.contextmanager
    def naming(self) -> Iterator[None]:
        """The reads and writes under it go through its own session, in one transaction: the
        lock is released when the record it wrote is committed, not before."""
        conn = self._db.connect()
        conn.row_factory = dict_row
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(_NAMING_LOCK),))
                self._held.session = conn
                yield
        except psycopg.OperationalError as exc:
            raise self._db.unavailable(exc) from None
        finally:
            self._held.session = None
            conn.close()
            self._changed()  # what it wrote, if anything, is committed now

    def _records(self) -> Records:
        session: psycopg.Connection[dict[str, Any]] | None = getattr(self._held, "session", None)
        if session is not None:
            return _select(session)
        with self._lock:
            # Taken before reading: a change announced meanwhile is read again next time.
            key = (self._notes.stamp(TOPIC), self._writes)
        copy = self._copy
        if copy is not None and (copy[0] == key or not self._notes.listening):
            return copy[1]
        with self._db.connection() as conn:
            records = _select(conn)
        self._copy = (key, records)
        return records

    def _change(self, sql: str, params: tuple[Any, ...]) -> None:
        session = getattr(self._held, "session", None)
        if session is not None:  # committed when naming ends
            session.execute(sql, params)
            notify(session, TOPIC)
            return
        with self._db.connection() as conn, conn.transaction():
            conn.execute(sql, params)
            notify(conn, TOPIC)
        self._changed()

    def _changed(self) -> None:
        with self._lock:
            self._writes += 1


def _select(conn: psycopg.Connection[dict[str, Any]]) -> Records:
    rows = conn.execute("SELECT name, record FROM rag_collections").fetchall()
    return {row["name"]: dict(row["record"]) for row in rows}

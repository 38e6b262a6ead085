"""A collection's committed index in PostgreSQL: the pointer (compare-and-set on commit), each
generation's manifest and BM25 files (one tar archive per index, with its sha256), the last
reindex's failures, and the reindex lock (a session advisory lock, released by PostgreSQL when
its holder dies).

A replica keeps the BM25 files of the generations it serves in its own data folder, fetched
once per generation and checked against the digest; it re-reads the pointer only when a commit
was announced (``Notifications``), and while PostgreSQL is away it keeps serving what it has.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from rag_service.errors import IndexBusy, StateUnavailable
from rag_service.index_state import (
    Failure,
    IndexPointer,
    IndexState,
    Manifest,
    SourceEntry,
    failed_reasons,
    failures_record,
    known_failures_in,
    new_pointer,
)
from rag_service.state.postgres import Database, Notifications, Stamp, first_line, notify

log = logging.getLogger(__name__)

_DIGEST_FILE = ".sha256"  # beside a fetched index: the archive it was unpacked from


@dataclass
class PointerCache:
    """What this process last read of each collection's pointer, and under which stamp; shared
    by every ``PostgresIndexRecords`` of the process (they are made per request)."""

    pointers: dict[str, tuple[Stamp, IndexPointer | None]] = field(default_factory=dict)
    manifests: dict[str, tuple[int, Manifest]] = field(default_factory=dict)


class PostgresIndexRecords:
    def __init__(
        self,
        db: Database,
        notes: Notifications,
        name: str,
        local: IndexState,
        cache: PointerCache,
    ) -> None:
        self._db, self._notes, self._name, self._local, self._cache = (
            db,
            notes,
            name,
            local,
            cache,
        )
        self.token_cache_path = local.token_cache_path
        self._topic = f"generation:{name}"
        self._lock_session: psycopg.Connection[dict[str, Any]] | None = None

    # Reading
    def pointer_stamp(self) -> tuple[str, int, str] | None:
        """The committed pointer itself: it changes exactly when a commit lands."""
        pointer = self.current()
        if pointer is None:
            return None
        return (pointer.collection, pointer.generation, pointer.committed_at)

    def current(self) -> IndexPointer | None:
        """Re-read only after a commit was announced; while PostgreSQL is away (notifications
        down), the pointer read before, so the loaded generation keeps serving."""
        stamp = self._notes.stamp(self._topic)
        cached = self._cache.pointers.get(self._name)
        if cached is not None and (cached[0] == stamp or not self._notes.listening):
            return cached[1]
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM rag_pointers WHERE collection = %s", (self._name,)
            ).fetchone()
        pointer = _pointer(row) if row else None
        self._cache.pointers[self._name] = (stamp, pointer)
        return pointer

    def manifest(self, pointer: IndexPointer) -> Manifest:
        cached = self._cache.manifests.get(self._name)
        if cached is not None and cached[0] == pointer.generation:
            return cached[1]
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT manifest FROM rag_generations WHERE collection = %s AND generation = %s",
                (self._name, pointer.generation),
            ).fetchone()
        if row is None:
            raise StateUnavailable(
                f"generation {pointer.generation} of {self._name!r} is gone from PostgreSQL "
                "(a newer commit removed it): retry"
            )
        manifest = {s: SourceEntry(**entry) for s, entry in row["manifest"].items()}
        self._cache.manifests[self._name] = (pointer.generation, manifest)
        return manifest

    def bm25_path(self, store: str, generation: int, backend: str) -> Path:
        return self._local.bm25_path(store, generation, backend)

    def lexical_index(self, pointer: IndexPointer, backend: str) -> Path:
        """The local copy of the committed BM25 index, fetched once and digest-checked."""
        path = self.bm25_path(pointer.collection, pointer.generation, backend)
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT sha256 FROM rag_lexical WHERE collection = %s AND generation = %s "
                "AND name = %s",
                (self._name, pointer.generation, path.name),
            ).fetchone()
            if row is None or _unpacked_digest(path) == row["sha256"]:
                # None: this backend's index was never committed (the caller says so).
                return path
            # Binary results: the text form of a bytea is hex, twice the size, decoded again
            # in Python (a 54 MB archive: 0.55 s and +322 MB against 0.21 s and +161 MB).
            archive = conn.execute(
                "SELECT sha256, archive FROM rag_lexical WHERE collection = %s "
                "AND generation = %s AND name = %s",
                (self._name, pointer.generation, path.name),
                binary=True,
            ).fetchone()
        if archive is None:
            raise StateUnavailable(f"the BM25 index {path.name} left PostgreSQL: retry")
        data = bytes(archive["archive"])
        if hashlib.sha256(data).hexdigest() != archive["sha256"]:
            raise StateUnavailable(f"the BM25 index {path.name} from PostgreSQL is corrupt")
        _unpack(data, archive["sha256"], path)
        log.info("fetched the BM25 index %s (%d bytes)", path.name, len(data))
        return path

    # Writing (the reindex)
    def commit(
        self, store: str, generation: int, fingerprint: str, manifest: Manifest
    ) -> IndexPointer:
        pointer = new_pointer(store, generation, fingerprint, manifest)
        folders = sorted(self._local.bm25_dir.glob(f"{store}.{generation}.*"))
        archives = [(folder.name, _pack(folder)) for folder in folders if folder.is_dir()]
        body = {s: asdict(entry) for s, entry in sorted(manifest.items())}
        with self._committing() as conn, conn.transaction():
            row = conn.execute(
                "SELECT * FROM rag_pointers WHERE collection = %s FOR UPDATE", (self._name,)
            ).fetchone()
            previous = _pointer(row) if row else None
            if previous is not None and previous.generation >= generation:
                raise IndexBusy(
                    f"generation {previous.generation} of {self._name!r} was committed by "
                    "another reindex first"
                )
            conn.execute(
                "INSERT INTO rag_generations (collection, generation, manifest) "
                "VALUES (%s, %s, %s)",
                (self._name, generation, Jsonb(body)),
            )
            for name, data in archives:
                conn.execute(
                    "INSERT INTO rag_lexical (collection, generation, name, sha256, archive) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (self._name, generation, name, hashlib.sha256(data).hexdigest(), data),
                )
            conn.execute(
                "INSERT INTO rag_pointers (collection, store, generation, fingerprint, sources, "
                "chunks, committed_at) VALUES (%(name)s, %(collection)s, %(generation)s, "
                "%(fingerprint)s, %(sources)s, %(chunks)s, %(committed_at)s) "
                "ON CONFLICT (collection) DO UPDATE SET store = EXCLUDED.store, "
                "generation = EXCLUDED.generation, fingerprint = EXCLUDED.fingerprint, "
                "sources = EXCLUDED.sources, chunks = EXCLUDED.chunks, "
                "committed_at = EXCLUDED.committed_at",
                {**asdict(pointer), "name": self._name},
            )
            # Readers may still hold the previous generation: older ones go.
            keep = previous.generation if previous is not None else generation
            conn.execute(
                "DELETE FROM rag_generations WHERE collection = %s AND generation < %s",
                (self._name, keep),
            )
            conn.execute(
                "DELETE FROM rag_lexical WHERE collection = %s AND generation < %s",
                (self._name, keep),
            )
            notify(conn, self._topic)
        self._local.prune(pointer, previous)
        for name, data in archives:  # this process's copy is the committed one
            _write_digest(self._local.bm25_dir / name, hashlib.sha256(data).hexdigest())
        return pointer

    def share_lexical(self, pointer: IndexPointer, backend: str) -> None:
        """Added to the committed generation's archives; replicas fetch it at their next load
        (one that found it missing tries again at its next request)."""
        folder = self.bm25_path(pointer.collection, pointer.generation, backend)
        key = (self._name, pointer.generation, folder.name)
        with self._db.connection() as conn:
            shared = conn.execute(
                "SELECT 1 FROM rag_lexical WHERE collection = %s AND generation = %s AND name = %s",
                key,
            ).fetchone()
        if shared is not None:
            return
        data = _pack(folder)
        digest = hashlib.sha256(data).hexdigest()
        with self._db.connection() as conn, conn.transaction():
            # Under the pointer's row lock: a commit of the next generation, which deletes the
            # archives of older ones, waits or has already moved the pointer on.
            row = conn.execute(
                "SELECT generation FROM rag_pointers WHERE collection = %s FOR SHARE",
                (self._name,),
            ).fetchone()
            if row is None or row["generation"] != pointer.generation:
                return
            conn.execute(
                "INSERT INTO rag_lexical (collection, generation, name, sha256, archive) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (*key, digest, data),
            )
        _write_digest(folder, digest)
        log.info("shared the BM25 index %s (%d bytes)", folder.name, len(data))

    def drop(self) -> None:
        with self._db.connection() as conn, conn.transaction():
            for statement in (
                "DELETE FROM rag_pointers WHERE collection = %s",
                "DELETE FROM rag_generations WHERE collection = %s",
                "DELETE FROM rag_lexical WHERE collection = %s",
                "DELETE FROM rag_failures WHERE collection = %s",
            ):
                conn.execute(statement, (self._name,))
            notify(conn, self._topic)
        self._cache.pointers.pop(self._name, None)
        self._cache.manifests.pop(self._name, None)
        self._local.drop()

    def record_failures(self, failed: dict[str, Failure], context: str) -> None:
        payload = failures_record(failed, context)
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO rag_failures (collection, payload) VALUES (%s, %s) "
                "ON CONFLICT (collection) DO UPDATE SET payload = EXCLUDED.payload",
                (self._name, Jsonb(payload)),
            )

    def _failures(self) -> dict[str, Any]:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT payload FROM rag_failures WHERE collection = %s", (self._name,)
            ).fetchone()
        return dict(row["payload"]) if row else {}

    def last_failures(self) -> dict[str, str]:
        return failed_reasons(self._failures())

    def known_failures(self, context: str) -> dict[str, Failure]:
        return known_failures_in(self._failures(), context)

    @contextlib.contextmanager
    def reindex_lock(self) -> Iterator[None]:
        with self._db.session_lock(f"reindex:{self._name}") as session:
            if session is None:
                raise IndexBusy(f"another reindex of {self._name!r} is running")
            self._lock_session = session
            try:
                yield
            finally:
                self._lock_session = None

    @contextlib.contextmanager
    def _committing(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """The session to commit through: the reindex lock's own while it is held, so a run
        that lost its lock (PostgreSQL restarted under it) cannot commit, and another run that
        took the lock meanwhile is the only writer."""
        if self._lock_session is None:
            with self._db.connection() as conn:
                yield conn
            return
        try:
            yield self._lock_session
        except psycopg.OperationalError as exc:
            raise StateUnavailable(
                f"lost the reindex lock of {self._name!r} with the connection to PostgreSQL "
                f"({first_line(exc)}); nothing was committed"
            ) from None


def _pointer(row: dict[str, Any]) -> IndexPointer:
    return IndexPointer(
        collection=row["store"],
        generation=row["generation"],
        fingerprint=row["fingerprint"],
        sources=row["sources"],
        chunks=row["chunks"],
        committed_at=row["committed_at"],
    )


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.name != _DIGEST_FILE:
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def _unpack(data: bytes, digest: str, path: Path) -> None:
    """Into ``path`` whole or not at all: unpacked beside it, then renamed into place."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(staging, filter="data")  # plain files only, nothing outside staging
    _write_digest(staging, digest)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)


def _write_digest(folder: Path, digest: str) -> None:
    (folder / _DIGEST_FILE).write_text(digest + "\n", encoding="ascii")


def _unpacked_digest(path: Path) -> str | None:
    try:
        return (path / _DIGEST_FILE).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None

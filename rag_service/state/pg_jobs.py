"""Document jobs in PostgreSQL, shared by every replica (the ``JobStore`` of the PostgreSQL
layout), and the documents of managed collections::

    rag_jobs        a job's record (jsonb), its collection, its owner, whether it was asked to stop
    rag_job_files   its staged bytes, and per applied write the bytes it replaced ('before') or
                    that there were none ('absent')
    rag_documents   a managed collection's documents: path, bytes, sha256

Ownership: a session advisory lock ``job:<id>``, all of a process's on one connection of its
own, so a process that dies frees its jobs at once and any replica adopts them within
``adopt_every_s``. ``rag_jobs.owner`` names the process that last took the lock, and every write
of a job checks it: a process that lost its session (and with it its locks) while another
adopted its job has its next write refused (``JobTakenOver``), so no job runs in two places past
one step.

Documents: a write changes ``rag_documents`` and keeps what it replaced in one transaction
(so applying is idempotent); each host's folder of a managed collection is a copy, made to match
the table (``checkout``) by every reindex of it before it scans. Undoing a write puts the saved
bytes back only while the document still holds the job's own: a later job's write stands. A job
writes and reindexes its collection under the lock ``documents:<collection>``, so two replicas'
jobs of one collection never interleave.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from rag_service.errors import JobTakenOver, RagError
from rag_service.jobs import Job
from rag_service.state.file_jobs import prune_empty
from rag_service.state.postgres import Database, lock_key

log = logging.getLogger(__name__)

_UNFINISHED = "record->>'state' IN ('queued', 'running')"
_FINISHED = "record->>'state' IN ('done', 'failed', 'cancelled')"
# What the n-th write replaces: the document's bytes, or a note that there was none.
_SAVE_PREVIOUS = """
    INSERT INTO rag_job_files (job_id, n, kind, content)
    SELECT %(job)s, %(n)s, 'before', content FROM rag_documents
    WHERE collection = %(collection)s AND path = %(path)s
    UNION ALL
    SELECT %(job)s, %(n)s, 'absent', NULL WHERE NOT EXISTS (
        SELECT 1 FROM rag_documents WHERE collection = %(collection)s AND path = %(path)s
    )
"""
_PUT_STAGED = """
    INSERT INTO rag_documents (collection, path, content, sha256)
    SELECT %(collection)s, %(path)s, content, encode(sha256(content), 'hex') FROM rag_job_files
    WHERE job_id = %(job)s AND n = %(n)s AND kind = 'staged'
    ON CONFLICT (collection, path) DO UPDATE
    SET content = EXCLUDED.content, sha256 = EXCLUDED.sha256
"""
# Undoing a put: only while the document holds the staged bytes (no later write since).
_STILL_STAGED = """
    sha256 = (SELECT encode(sha256(content), 'hex') FROM rag_job_files
              WHERE job_id = %(job)s AND n = %(n)s AND kind = 'staged')
"""
_RESTORE_PUT = f"""
    UPDATE rag_documents SET content = saved.content,
        sha256 = encode(sha256(saved.content), 'hex')
    FROM rag_job_files saved
    WHERE collection = %(collection)s AND path = %(path)s AND {_STILL_STAGED}
    AND saved.job_id = %(job)s AND saved.n = %(n)s AND saved.kind = 'before'
"""
_REMOVE_PUT = f"""
    DELETE FROM rag_documents
    WHERE collection = %(collection)s AND path = %(path)s AND {_STILL_STAGED}
"""
# Undoing a delete: only while the document is still gone (no later write since).
_RESTORE_DELETED = """
    INSERT INTO rag_documents (collection, path, content, sha256)
    SELECT %(collection)s, %(path)s, content, encode(sha256(content), 'hex') FROM rag_job_files
    WHERE job_id = %(job)s AND n = %(n)s AND kind = 'before'
    ON CONFLICT (collection, path) DO NOTHING
"""


class PostgresJobStore:
    adopt_every_s: float | None = 5.0  # a dead replica may never come back: the others look

    def __init__(self, db: Database, scratch: Path) -> None:
        """``scratch``: the local folder uploads are staged in before they go to PostgreSQL."""
        self._db = db
        self._scratch = scratch
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._session: psycopg.Connection[Any] | None = None  # holds this process's job locks
        self._held: set[str] = set()  # the jobs locked on it
        self._guard = threading.Lock()  # the session and ``_held``

    # -- records

    def staging(self, job_id: str) -> Path:
        folder = self._scratch / job_id
        folder.mkdir(parents=True)
        return folder

    def create(self, job: Job, staging: Path) -> None:
        if not self._lock(job.id):
            raise RagError(f"document job {job.id} exists already")  # a new id: never
        try:
            with self._db.connection() as conn, conn.transaction():
                conn.execute(
                    "INSERT INTO rag_jobs (id, collection, record, owner) VALUES (%s, %s, %s, %s)",
                    (job.id, job.collection, Jsonb(asdict(job)), self._owner),
                )
                for n, write in enumerate(job.writes):
                    if write.staged is not None:
                        conn.execute(
                            "INSERT INTO rag_job_files (job_id, n, kind, content) "
                            "VALUES (%s, %s, 'staged', %s)",
                            (job.id, n, (staging / write.staged).read_bytes()),
                        )
        except BaseException:
            self._unlock(job.id)
            raise
        shutil.rmtree(staging, ignore_errors=True)

    def save(self, job: Job) -> None:
        with self._db.connection() as conn:
            saved = conn.execute(
                "UPDATE rag_jobs SET record = %s, updated_at = now() WHERE id = %s AND owner = %s",
                (Jsonb(asdict(job)), job.id, self._owner),
            ).rowcount
        if not saved:
            raise JobTakenOver(f"document job {job.id} is run by another process now")

    def read(self, job_id: str) -> Job | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT record FROM rag_jobs WHERE id = %s", (job_id,)).fetchone()
        return Job.from_json(row["record"]) if row else None

    def unfinished(self, collection: str) -> list[Job]:
        """Every replica's, and those of a dead one until they are adopted."""
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT record FROM rag_jobs WHERE collection = %s AND {_UNFINISHED} ORDER BY id",
                (collection,),
            ).fetchall()
        return [Job.from_json(row["record"]) for row in rows]

    def adopt(self) -> list[Job]:
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT id FROM rag_jobs WHERE {_UNFINISHED} ORDER BY id")
            ids = [row["id"] for row in rows.fetchall()]
        adopted = []
        for job_id in ids:
            with self._guard:
                mine = job_id in self._held
            if mine or not self._lock(job_id):
                continue
            try:
                with self._db.connection() as conn:
                    row = conn.execute(
                        f"UPDATE rag_jobs SET owner = %s WHERE id = %s AND {_UNFINISHED} "
                        "RETURNING record",
                        (self._owner, job_id),
                    ).fetchone()
            except BaseException:
                self._unlock(job_id)
                raise
            if row is None:  # its owner finished it between the two looks
                self._unlock(job_id)
            else:
                adopted.append(Job.from_json(row["record"]))
        return adopted

    def prune(self, older_than_s: float) -> None:
        with self._db.connection() as conn:
            conn.execute(
                f"DELETE FROM rag_jobs WHERE {_FINISHED} "
                "AND updated_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )

    def request_cancel(self, job_id: str) -> None:
        with self._db.connection() as conn:
            conn.execute("UPDATE rag_jobs SET cancel_requested = true WHERE id = %s", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT cancel_requested FROM rag_jobs WHERE id = %s", (job_id,)
            ).fetchone()
        return bool(row and row["cancel_requested"])

    # -- ownership

    def disown(self, job_id: str) -> None:
        self._unlock(job_id)

    def release(self, job_id: str) -> None:
        with self._db.connection() as conn:
            conn.execute(
                "DELETE FROM rag_job_files WHERE job_id = %s AND EXISTS "
                "(SELECT 1 FROM rag_jobs WHERE id = %s AND owner = %s)",
                (job_id, job_id, self._owner),
            )
        self._unlock(job_id)

    @contextlib.contextmanager
    def exclusive(self, collection: str, waiting: Callable[[], None]) -> Iterator[None]:
        while True:
            with self._db.session_lock(f"documents:{collection}") as session:
                if session is not None:
                    yield
                    return
            waiting()

    def _lock(self, job_id: str) -> bool:
        key = lock_key(f"job:{job_id}")
        with self._guard:
            for attempt in (1, 2):
                if self._session is None or self._session.closed:
                    self._session = self._db.connect()
                    self._held.clear()  # they went with the session before
                try:
                    row = self._session.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    taken = bool(row.fetchone()[0])  # type: ignore[index]
                    break
                except psycopg.OperationalError as exc:
                    # A session PostgreSQL dropped (a restart): once more on a new one.
                    self._session.close()
                    if attempt == 2:
                        raise self._db.unavailable(exc) from None
            if taken:
                self._held.add(job_id)
            return taken

    def _unlock(self, job_id: str) -> None:
        with self._guard:
            if job_id not in self._held or self._session is None:
                return
            self._held.discard(job_id)
            try:
                self._session.execute("SELECT pg_advisory_unlock(%s)", (lock_key(f"job:{job_id}"),))
            except psycopg.OperationalError:
                self._session.close()  # the lock went with it

    def _check_owner(self, conn: psycopg.Connection[dict[str, Any]], job_id: str) -> None:
        """Inside a write's transaction: the row stays locked until it commits, so an adoption
        waits for it (and this write sees an adoption that came first)."""
        row = conn.execute(
            "SELECT owner FROM rag_jobs WHERE id = %s FOR UPDATE", (job_id,)
        ).fetchone()
        if row is None or row["owner"] != self._owner:
            raise JobTakenOver(f"document job {job_id} is run by another process now")

    # -- documents

    def apply(self, job: Job, n: int, folder: Path) -> None:
        """In ``rag_documents``; the folder follows at the reindex's checkout."""
        write = job.writes[n]
        args = {"job": job.id, "n": n, "collection": job.collection, "path": write.path}
        with self._db.connection() as conn, conn.transaction():
            self._check_owner(conn, job.id)
            if _saved(conn, job.id, n) is not None:
                return  # applied by an earlier run: saving and applying are one transaction
            conn.execute(_SAVE_PREVIOUS, args)
            if write.staged is None:
                conn.execute(
                    "DELETE FROM rag_documents WHERE collection = %(collection)s "
                    "AND path = %(path)s",
                    args,
                )
            else:
                conn.execute(_PUT_STAGED, args)

    def undo(self, job: Job, n: int, folder: Path | None) -> None:
        write = job.writes[n]
        args = {"job": job.id, "n": n, "collection": job.collection, "path": write.path}
        with self._db.connection() as conn, conn.transaction():
            self._check_owner(conn, job.id)
            saved = _saved(conn, job.id, n)
            if saved is None:
                return  # never applied
            if write.staged is None:
                conn.execute(_RESTORE_DELETED, args)  # nothing to do if there was none
            elif saved == "before":
                conn.execute(_RESTORE_PUT, args)
            else:
                conn.execute(_REMOVE_PUT, args)

    def checkout(self, collection: str, folder: Path) -> None:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT path, sha256 FROM rag_documents WHERE collection = %s", (collection,)
            ).fetchall()
        wanted = {row["path"]: row["sha256"] for row in rows}
        folder.mkdir(parents=True, exist_ok=True)
        present = _local_files(folder)
        removed = [relative for relative in present if relative not in wanted]
        for relative in removed:
            present.pop(relative).unlink()
            prune_empty(folder, (folder / relative).parent)
        stale = [
            p for p, digest in wanted.items() if p not in present or _digest(present[p]) != digest
        ]
        for relative in stale:
            with self._db.connection() as conn:
                row = conn.execute(
                    "SELECT content FROM rag_documents WHERE collection = %s AND path = %s",
                    (collection, relative),
                ).fetchone()
            if row is not None:
                _write(folder, relative, bytes(row["content"]))
            elif relative in present:  # deleted since the first look
                present[relative].unlink()
        if removed or stale:
            log.info(
                "checked out %s: %d documents written, %d removed",
                collection,
                len(stale),
                len(removed),
            )

    def drop_documents(self, collection: str) -> None:
        with self._db.connection() as conn:
            conn.execute("DELETE FROM rag_documents WHERE collection = %s", (collection,))

    def close(self) -> None:
        with self._guard:
            if self._session is not None:
                self._session.close()  # and every job lock with it
            self._held.clear()


def _saved(conn: psycopg.Connection[dict[str, Any]], job_id: str, n: int) -> str | None:
    """'before' or 'absent' once the n-th write was applied, else None."""
    row = conn.execute(
        "SELECT kind FROM rag_job_files WHERE job_id = %s AND n = %s "
        "AND kind IN ('before', 'absent')",
        (job_id, n),
    ).fetchone()
    return str(row["kind"]) if row else None


def _local_files(folder: Path) -> dict[str, Path]:
    """Every file (and link) under ``folder`` by its relative path; links are not followed."""
    found = {}
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        for name in [*files, *(d for d in dirs if (base / d).is_symlink())]:
            path = base / name
            found[path.relative_to(folder).as_posix()] = path
    return found


def _digest(path: Path) -> str | None:
    if path.is_symlink():
        return None  # never a document of ours: replaced
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write(folder: Path, relative: str, data: bytes) -> None:
    """Atomically: a reader sees the old bytes or the new."""
    target = folder / relative
    if not target.parent.resolve().is_relative_to(folder.resolve()):
        raise RagError(f"{relative}: the path leads out of the collection's folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden (a scan never reads it), and short: the name itself may take all 255 bytes.
    part = target.with_name(f".{hashlib.sha256(target.name.encode()).hexdigest()[:16]}.part")
    part.write_bytes(data)
    os.replace(part, target)

"""The PostgreSQL connection every state record shares: one pool per process, the schema
migrated on first use (safe to run from several processes at once, and again), and
session-level advisory locks that PostgreSQL releases when their holder's connection dies
(the semantics ``flock`` gives the file layout).

Tables (all prefixed ``rag_``, so the database can be shared with other applications):

    rag_schema        the migrations applied
    rag_pointers      collection -> its served generation (compare-and-set on commit)
    rag_generations   each committed generation: fingerprint, counts, manifest
    rag_lexical       each generation's BM25 index files, as one archive with its sha256
    rag_failures      the files a collection's last reindex could not read
    rag_collections   the listed collections, each with its record (managed or mirrored,
                      its folder); unlisting one deletes its row
    rag_keys          API keys: name, digest (never the key), scope, created, last used
    rag_secrets       the signing secret every replica shares
    rag_jobs          document jobs: record, collection, owner, cancel requested (pg_jobs.py)
    rag_job_files     a job's staged bytes and the bytes its writes replaced
    rag_documents     the documents of managed collections

Every change is announced on channel ``rag_state`` with a topic as payload (``generation:<name>``,
``keys``, ``collections``); each process LISTENs on one connection (``Notifications``) and
re-reads a record only when its topic was announced.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from rag_service.errors import ConfigError, StateUnavailable
from rag_service.redact import redact_url
from rag_service.settings import StateSettings

log = logging.getLogger(__name__)

try:
    import psycopg
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError:  # pragma: no cover - psycopg is a dependency; a trimmed install may lack it
    psycopg = None  # type: ignore[assignment]

CHANNEL = "rag_state"

# Each entry runs once, in order, in one transaction with its version recorded; never edit one
# that has shipped: add the next.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE rag_pointers (
        collection text PRIMARY KEY,
        store text NOT NULL,
        generation integer NOT NULL,
        fingerprint text NOT NULL,
        sources integer NOT NULL,
        chunks integer NOT NULL,
        committed_at text NOT NULL
    );
    CREATE TABLE rag_generations (
        collection text NOT NULL,
        generation integer NOT NULL,
        manifest jsonb NOT NULL,
        PRIMARY KEY (collection, generation)
    );
    CREATE TABLE rag_lexical (
        collection text NOT NULL,
        generation integer NOT NULL,
        name text NOT NULL,
        sha256 text NOT NULL,
        archive bytea NOT NULL,
        PRIMARY KEY (collection, generation, name)
    );
    CREATE TABLE rag_failures (
        collection text PRIMARY KEY,
        payload jsonb NOT NULL
    );
    CREATE TABLE rag_collections (
        name text PRIMARY KEY,
        record jsonb NOT NULL
    );
    CREATE TABLE rag_keys (
        name text PRIMARY KEY,
        digest text NOT NULL UNIQUE,
        scope text NOT NULL,
        created_at text NOT NULL,
        last_used text
    );
    CREATE TABLE rag_secrets (
        name text PRIMARY KEY,
        value bytea NOT NULL
    );
    CREATE TABLE rag_jobs (
        id text PRIMARY KEY,
        collection text NOT NULL,
        record jsonb NOT NULL,
        owner text NOT NULL,
        cancel_requested boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX rag_jobs_unfinished ON rag_jobs (collection)
        WHERE record->>'state' IN ('queued', 'running');
    CREATE TABLE rag_job_files (
        job_id text NOT NULL REFERENCES rag_jobs (id) ON DELETE CASCADE,
        n integer NOT NULL,
        kind text NOT NULL CHECK (kind IN ('staged', 'before', 'absent')),
        content bytea,
        PRIMARY KEY (job_id, n, kind)
    );
    CREATE TABLE rag_documents (
        collection text NOT NULL,
        path text NOT NULL,
        content bytea NOT NULL,
        sha256 text NOT NULL,
        PRIMARY KEY (collection, path)
    );
    """,
    # A BM25 archive (tens of MB of numeric arrays) does not shrink under PostgreSQL's pglz,
    # which tried and gave up on every insert: stored as it is, a commit's insert took about
    # half the time (docs/benchmarks.md). Rows written before keep their storage.
    "ALTER TABLE rag_lexical ALTER COLUMN archive SET STORAGE EXTERNAL;",
)

_MIGRATION_LOCK = "rag_service.migrations"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Database:
    """A pool of connections to ``settings.url``; the schema is migrated when it opens."""

    def __init__(self, settings: StateSettings) -> None:
        if psycopg is None:  # pragma: no cover
            raise ConfigError("RAG_STATE__URL needs psycopg: pip install 'psycopg[binary,pool]'")
        self.url = settings.url.get_secret_value()
        self.shown = redact_url(self.url)  # for errors and logs
        self._settings = settings
        timeout_ms = int(settings.statement_timeout_s * 1000)
        # The server probes an idle session after 30 s: a host that vanished (powered off, cut
        # from the network) has its sessions, and the reindex and job locks they hold, ended
        # within a minute, not the system's two hours, so another host can take them over.
        keepalives = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10"
        self._kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(settings.connect_timeout_s)),
            "options": f"-c statement_timeout={timeout_ms} {keepalives} -c tcp_keepalives_count=3",
            "application_name": "rag-service",
        }
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=settings.pool_size,
            kwargs={**self._kwargs, "autocommit": True},
            timeout=settings.connect_timeout_s,
            # A pooled connection may have died with a restart of the server: checked (one
            # round trip) before it is handed out, so a request after an outage does not fail.
            check=ConnectionPool.check_connection,
            open=False,
            name="rag-state",
        )
        self._pool.open(wait=False)
        try:
            self.migrate()
        except StateUnavailable:
            # Nobody will close a store that failed to open: stop the pool's reconnect attempts
            # (and their warnings, which would follow a command's error line) now.
            self._pool.close()
            raise

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection in autocommit mode (``conn.transaction()`` for more than one
        statement); StateUnavailable when PostgreSQL cannot be reached in time."""
        try:
            with self._pool.connection() as conn:
                conn.row_factory = dict_row  # type: ignore[assignment]
                yield conn  # type: ignore[misc]
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise self.unavailable(exc) from None

    def connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool: for a lock held for minutes, or LISTEN."""
        try:
            return psycopg.connect(self.url, autocommit=autocommit, **self._kwargs)
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> StateUnavailable:
        """What to raise when talking to PostgreSQL failed with ``exc``."""
        return StateUnavailable(f"PostgreSQL at {self.shown} is unavailable: {first_line(exc)}")

    @contextlib.contextmanager
    def advisory_lock(self, name: str) -> Iterator[bool]:
        """Try to take the session lock ``name`` on a connection of its own; yields whether it
        was taken. It is released on leaving, or by PostgreSQL when this process dies."""
        with self.session_lock(name) as session:
            yield session is not None

    @contextlib.contextmanager
    def session_lock(self, name: str) -> Iterator[psycopg.Connection[dict[str, Any]] | None]:
        """As ``advisory_lock``, yielding the session that holds the lock (None: not taken).
        Writing through that session is writing under the lock: if the session was lost (and
        the lock with it, to PostgreSQL or the network going away), the write fails."""
        conn = self.connect()
        conn.row_factory = dict_row
        taken = False
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s) AS taken", (lock_key(name),)
            ).fetchone()
            taken = bool(row and row["taken"])
            yield conn if taken else None
        finally:
            # Unlocked before the session ends: closing alone frees the lock only once the
            # server has seen the session go, a moment later, and a caller that tries again at
            # once (another process after this one's job) would find it still held.
            if taken:
                with contextlib.suppress(psycopg.Error):  # a lost session took the lock along
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
            conn.close()

    def migrate(self) -> None:
        """Apply the migrations not applied yet. Concurrent callers wait on one lock; running it
        again changes nothing."""
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(_MIGRATION_LOCK),))
            conn.execute("CREATE TABLE IF NOT EXISTS rag_schema (version integer PRIMARY KEY)")
            row = conn.execute("SELECT coalesce(max(version), 0) AS v FROM rag_schema").fetchone()
            applied = int(row["v"]) if row else 0
            for version, sql in enumerate(MIGRATIONS[applied:], start=applied + 1):
                conn.execute(sql)
                conn.execute("INSERT INTO rag_schema (version) VALUES (%s)", (version,))
                log.info("applied state migration %d", version)

    def check(self) -> None:
        """Raise StateUnavailable unless PostgreSQL answers now."""
        with self.connection() as conn:
            conn.execute("SELECT 1")


def notify(conn: psycopg.Connection[Any], topic: str) -> None:
    """Announce ``topic`` to every listening process; inside a transaction, at its commit."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, topic))


Stamp = int


class Notifications:
    """What changed, as announced on ``CHANNEL``, heard on one connection of its own in a
    thread. ``stamp(topic)`` changes whenever ``topic`` is announced, so a reader compares it
    with the stamp it read its copy under (taken *before* reading) and re-reads only then.
    When the connection comes back after an outage every stamp changes once (what was missed is
    unknown). While it is down, stamps stand still and readers keep their copies: the thread
    retries at least every ``retry_s``, so that is how stale a copy can get once PostgreSQL is
    back. LISTEN needs a session of its own: behind a pooler, use session pooling."""

    def __init__(self, db: Database, retry_s: float) -> None:
        self._db = db
        self._retry_s = retry_s
        self._counts: dict[str, int] = {}
        self._epoch = 0  # bumped when listening (re)starts
        self._listening = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-state-listen", daemon=True)
        self._thread.start()

    @property
    def listening(self) -> bool:
        return self._listening

    def stamp(self, topic: str) -> int:
        with self._lock:
            return self._counts.get(topic, 0) + self._epoch

    def wait_listening(self, timeout_s: float) -> bool:
        """For tests and start-up: True once the connection listens."""
        deadline = time.monotonic() + timeout_s
        while not self._listening and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._listening

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                conn = self._db.connect()
            except StateUnavailable:
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._retry_s)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                with self._lock:
                    self._epoch += 1
                self._listening, backoff = True, 0.2
                while not self._stopping.is_set():
                    for note in conn.notifies(timeout=0.5, stop_after=64):
                        with self._lock:
                            self._counts[note.payload] = self._counts.get(note.payload, 0) + 1
                    # notifies() returns quietly on a dead connection: probe it.
                    conn.execute("SELECT 1")
            except psycopg.Error as exc:
                log.warning("state notifications interrupted: %s", first_line(exc))
            finally:
                self._listening = False
                conn.close()


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

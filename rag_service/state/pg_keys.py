"""API keys in PostgreSQL: the same keys, digests and signatures as ``rag_service.keys``, kept
as rows every replica reads instead of files in one data folder.

``rag_keys`` holds each key's name, scope, creation time, last use and HMAC digest (never the
key); ``rag_secrets`` holds the HMAC secret, made by whichever process needs it first and read
back by all, so every replica hashes and signs alike. A replica checks keys against its own
copy of the set, re-read only when a create or revoke was announced (topic ``keys``), so a
request costs no query; while PostgreSQL is away that copy keeps answering, and creating or
revoking a key fails with ``StateUnavailable``.
"""

from __future__ import annotations

import logging
import secrets
from typing import cast

import psycopg

from rag_service.errors import StateUnavailable
from rag_service.keys import (
    ApiKey,
    KeyChecks,
    KeyInfo,
    KeyStoreError,
    Scope,
    new_key,
    now,
    touch_due,
)
from rag_service.state.postgres import Database, Notifications, Stamp, first_line, notify

log = logging.getLogger(__name__)

TOPIC = "keys"
_SECRET = "keys"  # its row in rag_secrets
_NEVER: Stamp = -1  # no stamp is negative


class PostgresKeys(KeyChecks):
    def __init__(self, db: Database, notes: Notifications) -> None:
        self._db, self._notes = db, notes
        self._secret: bytes | None = None  # never changes once made: read once per process
        # The key set and the stamp it was read under. Replaced whole, never changed in place,
        # so request threads may read it without a lock.
        self._cache: tuple[Stamp, tuple[ApiKey, ...]] | None = None
        self._touched: dict[str, float] = {}
        self._warned = False  # of answering from the copy, once per outage

    # Writing (the CLI)
    def create(self, name: str, scope: Scope) -> str:
        key = new_key(name, scope)
        digest = self._digest(key)
        with self._db.connection() as conn, conn.transaction():
            made = conn.execute(
                "INSERT INTO rag_keys (name, digest, scope, created_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, digest, scope, now()),
            ).fetchone()
            if made is None:
                raise KeyStoreError(f"a key named {name!r} exists; revoke it first")
            notify(conn, TOPIC)
        self._forget()
        return key

    def revoke(self, name: str) -> None:
        with self._db.connection() as conn, conn.transaction():
            gone = conn.execute(
                "DELETE FROM rag_keys WHERE name = %s RETURNING name", (name,)
            ).fetchone()
            if gone is None:
                raise KeyStoreError(f"no key named {name!r}")
            notify(conn, TOPIC)
        self._forget()

    def list_keys(self) -> list[KeyInfo]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT name, scope, created_at, last_used FROM rag_keys ORDER BY created_at, name"
            ).fetchall()
        return [
            KeyInfo(r["name"], cast(Scope, r["scope"]), r["created_at"], r["last_used"])
            for r in rows
        ]

    # Reading (every request)
    def _current(self) -> tuple[ApiKey, ...]:
        """The key set: the copy, unless a change was announced since it was read. Without
        PostgreSQL (no listener, or the re-read failing) the copy, if there is one: refusing
        every caller would turn a database outage into an API outage."""
        cached = self._cache
        if cached is not None and not self._notes.listening:
            self._warn_once("PostgreSQL is unavailable")
            return cached[1]
        stamp = self._notes.stamp(TOPIC)  # taken before reading: a change meanwhile re-reads
        if cached is not None and cached[0] == stamp:
            self._warned = False
            return cached[1]
        try:
            keys = self._read()
        except StateUnavailable as exc:
            if cached is None:
                raise
            self._warn_once(str(exc))
            return cached[1]
        self._cache, self._warned = (stamp, keys), False
        return keys

    def _read(self) -> tuple[ApiKey, ...]:
        # The secret comes with the first key set: a copy must be usable while PostgreSQL is away.
        self._load_secret()
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT name, scope, created_at, digest FROM rag_keys ORDER BY created_at, name"
            ).fetchall()
        return tuple(
            ApiKey(r["name"], cast(Scope, r["scope"]), r["created_at"], r["digest"]) for r in rows
        )

    def _load_secret(self) -> bytes:
        """The shared secret, made on first need: of two processes making it at once, one
        row is kept and both read that one."""
        if self._secret is None:
            with self._db.connection() as conn:
                conn.execute(
                    "INSERT INTO rag_secrets (name, value) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (_SECRET, secrets.token_bytes(32)),
                )
                row = conn.execute(
                    "SELECT value FROM rag_secrets WHERE name = %s", (_SECRET,)
                ).fetchone()
            assert row is not None  # inserted, or kept, just now; never deleted
            self._secret = bytes(row["value"])
        return self._secret

    def _touch(self, name: str) -> None:
        """Record a use of ``name``, at most every so often; never at the request's expense:
        skipped while PostgreSQL is known to be away (it would wait out a connection
        timeout), and a failure loses only the record."""
        if not self._notes.listening or not touch_due(self._touched, name):
            return
        try:
            with self._db.connection() as conn:
                conn.execute("UPDATE rag_keys SET last_used = %s WHERE name = %s", (now(), name))
        except (StateUnavailable, psycopg.Error) as exc:
            log.debug("last use of key %r not recorded: %s", name, first_line(exc))

    def _forget(self) -> None:
        """After this process's own change: re-read at the next check, without waiting for the
        announcement to come back; the copy stays, for an outage meanwhile."""
        cached = self._cache
        if cached is not None:
            self._cache = (_NEVER, cached[1])

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "%s: API keys are checked against the %d keys read before; keys created or "
                "revoked meanwhile take effect once it is back",
                reason,
                len(self._cache[1]) if self._cache else 0,
            )

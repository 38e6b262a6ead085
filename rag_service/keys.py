"""API keys: made by ``rag keys create``, checked on every request that needs one.

A key is ``rag_`` and 43 URL-safe characters: 32 random bytes from ``secrets``. The service keeps
no key, only an HMAC-SHA256 of each, keyed by a random secret in a second file. A fast keyed
hash is the right tool here, and a slow password hash (bcrypt, scrypt, argon2) is not: those
are slow on purpose so that a stolen file cannot be used to try the few million passwords people
choose, but a 256-bit random key cannot be guessed at any speed, so slowness would only tax every
request. The HMAC's secret means the key file alone does not even let one test a candidate.

With ``RAG_STATE__URL`` set the digests and the secret are rows in PostgreSQL instead
(``rag_service.state.pg_keys``), so replicas with data folders of their own share them; both
stores satisfy ``rag_service.protocols.ApiKeys`` and share the hashing below.

In the file layout (``KeyStore``) both files live in the data directory that API replicas
share (``keys.json`` and ``keys.secret``, mode 0600). Writers (the CLI) take ``keys.lock`` and
replace ``keys.json`` atomically; readers (each API process) reload it when its modification
time changes, so a revoked key stops working on every replica at its next request. The last use
of a key is the modification time of its own marker file (``keys.used/NAME``), touched at most
once a minute per process: request handling never rewrites the key file, so it can never lose a
key to a race.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

Scope = Literal["query", "admin"]
SCOPES: tuple[Scope, ...] = ("query", "admin")
PREFIX = "rag_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOUCH_EVERY_S = 60.0


def grants(held: Scope, needed: Scope) -> bool:
    """``admin`` may do everything ``query`` may, and more."""
    return held == "admin" or needed == "query"


class KeyStoreError(ValueError):
    """A key cannot be created or revoked as asked (the message says why)."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: Scope
    created: str  # ISO 8601, UTC
    digest: str  # hex HMAC-SHA256 of the key


@dataclass(frozen=True)
class KeyInfo:
    name: str
    scope: Scope
    created: str
    last_used: str | None


def new_key(name: str, scope: Scope) -> str:
    """A fresh key for ``name``; KeyStoreError if the name or scope is not one we accept."""
    if not _NAME.fullmatch(name):
        raise KeyStoreError(f"a key name is 1-64 of A-Z a-z 0-9 . _ - (not {name!r})")
    if scope not in SCOPES:
        raise KeyStoreError(f"scope must be one of {', '.join(SCOPES)}")
    return PREFIX + secrets.token_urlsafe(32)


def now() -> str:
    """The time of day as keys record it: ISO 8601, UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def keyed_digest(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def keyed_signature(secret: bytes, purpose: str, message: str) -> str:
    """``message`` signed under ``secret``, separated by ``purpose`` from the key digests and
    from other uses."""
    payload = f"{purpose}\0{message}".encode()
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def touch_due(touched: dict[str, float], name: str) -> bool:
    """Whether to record a use of ``name`` now: at most every _TOUCH_EVERY_S per key and
    process, so that checking a key costs no write on most requests. ``touched`` is the
    process's record of when each was last recorded."""
    moment = time.monotonic()
    if moment - touched.get(name, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
        return False
    touched[name] = moment
    return True


def find(
    keys: tuple[ApiKey, ...], presented: str, digest_of: Callable[[str], str]
) -> ApiKey | None:
    """The key ``presented`` is, or None. Every stored digest is compared, in constant time,
    so the time taken says nothing about which key came close. ``digest_of`` is called only
    when there are keys: before the first, a store may have no secret to hash with yet."""
    if not presented.startswith(PREFIX) or not keys:
        return None
    digest = digest_of(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest):
            found = key
    return found


class KeyChecks(ABC):
    """The half of a key store that every request uses, the same for both stores: whether any
    key exists, which key was presented (``find``), and signatures. A store provides its key
    set, its secret and how it records a use."""

    def any(self) -> bool:
        return bool(self._current())

    def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None (``find``)."""
        found = find(self._current(), presented, self._digest)
        if found is not None:
            self._touch(found.name)
        return found

    def sign(self, purpose: str, message: str) -> str:
        """An HMAC of ``message`` under the keys' secret, separated by ``purpose`` from the key
        digests and from other uses (signed document links)."""
        return keyed_signature(self._load_secret(), purpose, message)

    def _digest(self, key: str) -> str:
        return keyed_digest(self._load_secret(), key)

    @abstractmethod
    def _current(self) -> tuple[ApiKey, ...]:
        """The keys as they stand now (cheap: called on every request)."""

    @abstractmethod
    def _load_secret(self) -> bytes:
        """The secret the digests and signatures are keyed with."""

    @abstractmethod
    def _touch(self, name: str) -> None:
        """Record a use of the key ``name``, at most every so often (``touch_due``)."""


class KeyStore(KeyChecks):
    def __init__(self, folder: Path) -> None:
        self.path = folder / "keys.json"
        self._secret_path = folder / "keys.secret"
        self._used = folder / "keys.used"
        self._lock_path = folder / "keys.lock"
        # (inode, mtime_ns, size) of the file _keys was read from: every write replaces the file,
        # so a new inode tells a change even within one tick of the clock.
        self._loaded: tuple[int, int, int] | None = None
        self._keys: tuple[ApiKey, ...] = ()
        self._secret: bytes | None = None
        self._touched: dict[str, float] = {}
        self._guard = threading.Lock()

    # Writing (the CLI)
    def create(self, name: str, scope: Scope) -> str:
        """A new key; it is returned once and never stored."""
        key = new_key(name, scope)
        with self._writing() as keys:
            if any(k.name == name for k in keys):
                raise KeyStoreError(f"a key named {name!r} exists; revoke it first")
            keys.append(ApiKey(name, scope, now(), self._digest(key)))
        return key

    def revoke(self, name: str) -> None:
        with self._writing() as keys:
            kept = [k for k in keys if k.name != name]
            if len(kept) == len(keys):
                raise KeyStoreError(f"no key named {name!r}")
            keys[:] = kept
        (self._used / name).unlink(missing_ok=True)

    def list_keys(self) -> list[KeyInfo]:
        return [KeyInfo(k.name, k.scope, k.created, self._last_used(k.name)) for k in self._read()]

    # Reading (every request)
    def _current(self) -> tuple[ApiKey, ...]:
        try:
            stat = self.path.stat()
            version: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            version = None
        with self._guard:
            if version != self._loaded:
                self._keys = tuple(self._read()) if version else ()
                self._loaded = version
            return self._keys

    def _read(self) -> list[ApiKey]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [
            ApiKey(k["name"], cast(Scope, k["scope"]), k["created"], k["digest"])
            for k in document["keys"]
        ]

    def _load_secret(self) -> bytes:
        """Empty until a key is made: signatures mean nothing before that, and nothing should
        rely on one."""
        if self._secret is None:
            try:
                self._secret = bytes.fromhex(self._secret_path.read_text().strip())
            except FileNotFoundError:
                self._secret = b""  # no key was ever made: nothing can match
        return self._secret

    @contextmanager
    def _writing(self) -> Iterator[list[ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self._secret_path.exists():
                _write_private(self._secret_path, secrets.token_hex(32) + "\n")
            self._secret = None
            keys = self._read()
            yield keys
            body = {"version": 1, "keys": [asdict(k) for k in keys]}
            _write_private(self.path, json.dumps(body, indent=2) + "\n")

    def _touch(self, name: str) -> None:
        if not touch_due(self._touched, name):
            return
        try:
            self._used.mkdir(exist_ok=True)
            (self._used / name).touch()
        except OSError:
            pass  # a read-only data directory: last use is not recorded, the key still works

    def _last_used(self, name: str) -> str | None:
        try:
            mtime = (self._used / name).stat().st_mtime
        except FileNotFoundError:
            return None
        return datetime.fromtimestamp(mtime, UTC).isoformat(timespec="seconds")


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)

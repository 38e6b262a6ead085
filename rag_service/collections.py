"""Collections: named document sets, each with its own folder, generations, BM25 and Chroma
collection. A reindex or a failure in one never touches another.

Layout under ``data_dir``::

    CURRENT.json, manifests/, bm25/ ...   the ``default`` collection (as before collections)
    collections/<name>/collection.json    a collection's record: its folder, managed or not
    collections/<name>/CURRENT.json ...   its index state (``IndexState`` rooted here)
    collections/<name>/documents/         the folder of a managed collection

Each collection indexes exactly one folder, so the API and ``rag reindex`` share one
incremental engine:

- **managed** (made with ``PUT /v1/collections/{name}``): its folder lives under the data
  directory and changes only through the API (or ``rag docs``); a reindex of it takes no path.
- **mirrored** (``default``, or made by ``rag reindex PATH --collection NAME``): it indexes a
  folder of yours; a reindex with another path re-points it (the index mirrors that folder),
  and documents written over the API land in that folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag_service.errors import BadRequest, ConfigError, NotFound
from rag_service.index_state import IndexState, write_atomically

DEFAULT = "default"

# A folder name on every filesystem (lower case: case-insensitive ones agree) and part of a chat
# model id (``rag/<name>``).
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
NAME_RULE = "1 to 48 lower-case letters, digits, - and _, starting with a letter or digit"

_RECORD = "collection.json"


def store_name(prefix: str, collection: str, fingerprint: str) -> str:
    """The Chroma collection holding a collection's generations under one fingerprint. Chroma
    allows 63 characters and the prefix may take 41, so a named collection is known by a
    digest of its name."""
    if collection == DEFAULT:
        return f"{prefix}-{fingerprint[:16]}"
    return f"{prefix}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}-{fingerprint[:12]}"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadRequest(f"a collection name is {NAME_RULE}")
    return name


@dataclass(frozen=True)
class Collection:
    name: str
    root: Path  # its index state: pointer, manifests, BM25, locks
    folder: Path  # the documents it indexes
    managed: bool  # the folder is under the data directory, written only through the API
    created_at: str

    @property
    def state(self) -> IndexState:
        return IndexState(self.root)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Collections:
    """The collections on disk under one data directory."""

    def __init__(self, data_dir: Path, corpus_dir: Path) -> None:
        self._data_dir = data_dir
        self._corpus_dir = corpus_dir
        self._dir = data_dir / "collections"

    def root(self, name: str) -> Path:
        return self._data_dir if name == DEFAULT else self._dir / check_name(name)

    def _read(self, name: str) -> Collection | None:
        root = self.root(name)
        try:
            raw = json.loads((root / _RECORD).read_text(encoding="utf-8"))
        except FileNotFoundError:
            if name == DEFAULT:  # exists from the start, mirroring RAG_CORPUS_DIR
                return Collection(DEFAULT, root, self._corpus_dir.resolve(), False, "")
            return None
        return Collection(
            name, root, Path(raw["folder"]), bool(raw["managed"]), str(raw["created_at"])
        )

    def _write(self, collection: Collection) -> None:
        collection.root.mkdir(parents=True, exist_ok=True)
        record = {
            "folder": str(collection.folder),
            "managed": collection.managed,
            "created_at": collection.created_at,
        }
        write_atomically(collection.root / _RECORD, record)

    def get(self, name: str) -> Collection:
        found = self._read(name)
        if found is None:
            raise NotFound(f"no collection {name!r}; PUT /v1/collections/{name} creates it")
        return found

    def exists(self, name: str) -> bool:
        return self._read(name) is not None

    def names(self) -> list[str]:
        found = [DEFAULT]
        if self._dir.is_dir():
            found += sorted(
                p.parent.name
                for p in self._dir.glob(f"*/{_RECORD}")
                if NAME.fullmatch(p.parent.name) and p.parent.name != DEFAULT
            )
        return found

    def create(self, name: str) -> tuple[Collection, bool]:
        """A managed collection; ``(collection, False)`` if it already exists (any kind)."""
        existing = self._read(name)
        if existing is not None:
            return existing, False
        root = self.root(name)
        collection = Collection(name, root, root / "documents", True, _now())
        collection.folder.mkdir(parents=True, exist_ok=True)
        self._write(collection)
        return collection, True

    def for_reindex(self, name: str, folder: Path | None, *, record: bool = True) -> Collection:
        """The collection ``rag reindex [PATH] --collection NAME`` indexes: a mirrored one is
        made or re-pointed to ``folder`` (written down only if ``record``: a dry run changes
        nothing); a managed one takes no other folder than its own."""
        existing = self._read(name)
        if folder is None:
            if existing is None:
                raise ConfigError(f"no collection {name!r}: give the folder it should index")
            return existing
        folder = folder.resolve()
        if existing is not None and existing.folder == folder:
            return existing
        if existing is not None and existing.managed:
            raise ConfigError(
                f"collection {name!r} holds documents managed over the API (in "
                f"{existing.folder}); reindex it without a path, or use another collection"
            )
        collection = Collection(
            name, self.root(name), folder, False, existing.created_at if existing else _now()
        )
        if record:
            self._write(collection)
        return collection

    def remove_files(self, collection: Collection) -> None:
        """Delete what a (non-default) collection keeps under the data directory: its index
        state and, if managed, its documents. The caller drops its Chroma collections first."""
        if collection.name == DEFAULT:
            raise BadRequest("the default collection cannot be deleted")
        shutil.rmtree(collection.root)

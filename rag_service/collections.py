"""Collections: named document sets, each with its own folder, generations, BM25 and Chroma
collection. A reindex or a failure in one never touches another.

Layout under ``data_dir``::

    CURRENT.json, manifests/, bm25/ ...   the ``default`` collection (as before collections)
    collections/<name>/collection.json    a collection's record: its folder, managed or not
    collections/<name>/CURRENT.json ...   its index state (``IndexState`` rooted here)
    collections/<name>/documents/         the folder of a managed collection

With ``RAG_STATE__URL`` set, the records, the index state and a managed collection's
documents are in PostgreSQL (``state.pg_collections``, ``state.pg_index``, ``state.pg_jobs``),
so every process agrees on which collections exist and what they hold; the folders under
``collections/<name>/`` hold caches: the BM25 files, and a copy of the documents to scan.

Each collection indexes exactly one folder, so the API and ``rag reindex`` share one
incremental engine:

- **managed** (made with ``PUT /v1/collections/{name}``): its folder lives under the data
  directory and changes only through the API (or ``rag docs``); a reindex of it takes no path.
  With PostgreSQL the documents are rows, and the folder each host keeps is a copy of them
  (``JobStore.checkout``, before each reindex).
- **mirrored** (``default``, or made by ``rag reindex PATH --collection NAME``): it indexes a
  folder of yours; a reindex with another path re-points it (the index mirrors that folder),
  and documents written over the API land in that folder (never with PostgreSQL: the folder
  is on the host that runs ``rag reindex``, not on the replica that took the upload).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag_service.errors import BadRequest, ConfigError, NameTaken, NotFound
from rag_service.index_state import write_atomically
from rag_service.names import folded, hidden_character, nfc, utf8_length
from rag_service.protocols import CollectionRecords, IndexRecords, StateStore
from rag_service.state import FileState

DEFAULT = "default"

# A name is a folder under the data directory, part of URLs (percent-encoded) and of a chat
# model id (``rag/<name>``); Chroma knows it by a digest. 64 Chinese characters are 192 bytes.
MAX_NAME_CHARS = 64
MAX_NAME_BYTES = 200
NAME_RULE = (
    f"1 to {MAX_NAME_CHARS} characters ({MAX_NAME_BYTES} bytes in UTF-8) in any script, "
    "without / or \\, control or format characters, a leading dot, or spaces at either end"
)

_RECORD = "collection.json"


def _root(data_dir: Path, name: str) -> Path:
    """A collection's folder under the data directory (of a name already checked)."""
    return data_dir if name == DEFAULT else data_dir / "collections" / name


def store_name(prefix: str, collection: str, fingerprint: str) -> str:
    """The Chroma collection holding a collection's generations under one fingerprint. Chroma
    allows 63 characters and the prefix may take 41, so a named collection is known by a
    digest of its name."""
    if collection == DEFAULT:
        return f"{prefix}-{fingerprint[:16]}"
    return f"{prefix}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}-{fingerprint[:12]}"


def check_name(name: str) -> str:
    """``name`` in NFC if it can name a collection; a ``BadRequest`` that says why not."""
    name = nfc(name)
    problem = None
    if not 1 <= len(name) <= MAX_NAME_CHARS or utf8_length(name) > MAX_NAME_BYTES:
        problem = "its length"
    elif "/" in name or "\\" in name:
        problem = "a / or \\"
    elif (char := hidden_character(name)) is not None:
        problem = f"the invisible character {char}"
    elif name.startswith("."):
        problem = "its leading dot"
    elif name != name.strip():
        problem = "spaces at an end"
    if problem is not None:
        raise BadRequest(
            f"{name[:80]!r} cannot name a collection ({problem}): a name is {NAME_RULE}"
        )
    return name


@dataclass(frozen=True)
class Collection:
    name: str
    root: Path  # its index state: pointer, manifests, BM25, locks
    folder: Path  # the documents it indexes
    managed: bool  # the folder is under the data directory, written only through the API
    created_at: str
    records: StateStore = field(compare=False, repr=False)

    @property
    def state(self) -> IndexRecords:
        return self.records.index(self.name, self.root)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Collections:
    """The collections of one data directory (given resolved, as settings give it): the rules
    for their names and folders, over the records ``state`` keeps."""

    def __init__(self, data_dir: Path, corpus_dir: Path, state: StateStore | None = None) -> None:
        """``state``: where the records live (default: files under ``data_dir``)."""
        self._data_dir = data_dir
        self._corpus_dir = corpus_dir
        self._state: StateStore = state or FileState(data_dir)
        self._records: CollectionRecords = self._state.collection_records()

    def root(self, name: str) -> Path:
        return _root(self._data_dir, check_name(name))

    def records(self, name: str) -> IndexRecords:
        """The index records of ``name``, whether or not the collection exists yet (a reindex
        takes its lock before it makes the collection)."""
        return self._state.index(check_name(name), self.root(name))

    def _read(self, name: str) -> Collection | None:
        name = check_name(name)
        root = self.root(name)
        raw = self._records.read(name)
        if raw is None:
            if name == DEFAULT:  # exists from the start, mirroring RAG_CORPUS_DIR
                return Collection(DEFAULT, root, self._corpus_dir, False, "", self._state)
            return None
        managed = bool(raw["managed"])
        # A managed folder is always the one under its root; the record's copy is not trusted:
        # versions before 0.2 wrote it relative to their working directory.
        folder = root / "documents" if managed else Path(raw["folder"]).resolve()
        return Collection(name, root, folder, managed, str(raw["created_at"]), self._state)

    def _write(self, collection: Collection) -> None:
        record = {
            "folder": str(collection.folder),
            "managed": collection.managed,
            "created_at": collection.created_at,
        }
        self._records.write(collection.name, record)

    def _refuse_lookalike(self, name: str) -> None:
        """``NameTaken`` if a collection's name differs from ``name`` only in case (a new
        collection's name; under ``naming``)."""
        taken = next((n for n in self.names() if folded(n) == folded(name)), None)
        if taken is not None:
            raise NameTaken(
                f"the collection {taken!r} exists, and names that differ only in case are one "
                f"name here: use {taken!r}, or another name"
            )

    def get(self, name: str) -> Collection:
        found = self._read(name)
        if found is None:
            raise NotFound(f"no collection {name!r}; PUT /v1/collections/{{name}} creates one")
        return found

    def exists(self, name: str) -> bool:
        return self._read(name) is not None

    def names(self) -> list[str]:
        return [DEFAULT] + [n for n in self._records.names() if n != DEFAULT and _is_name(n)]

    def create(self, name: str) -> tuple[Collection, bool]:
        """A managed collection; ``(collection, False)`` if it already exists (any kind)."""
        name = check_name(name)
        with self._records.naming():
            existing = self._read(name)
            if existing is not None:
                return existing, False
            self._refuse_lookalike(name)
            root = self.root(name)
            # What a deletion or a creation cut short left behind must not come back.
            shutil.rmtree(root, ignore_errors=True)
            self.records(name).drop()
            self._state.jobs().drop_documents(name)
            collection = Collection(name, root, root / "documents", True, _now(), self._state)
            collection.folder.mkdir(parents=True)
            self._write(collection)
        return collection, True

    def for_reindex(self, name: str, folder: Path | None, *, record: bool = True) -> Collection:
        """The collection ``rag reindex [PATH] --collection NAME`` indexes: a mirrored one is
        made or re-pointed to ``folder`` (written down only if ``record``: a dry run changes
        nothing); a managed one takes no other folder than its own."""
        name = check_name(name)
        if folder is None:
            existing = self._read(name)
            if existing is None:
                raise ConfigError(f"no collection {name!r}: give the folder it should index")
            return existing
        folder = folder.resolve()  # given on the command line, relative to where it runs
        with self._records.naming():
            existing = self._read(name)
            if existing is not None and existing.folder.resolve() == folder:
                return existing
            if existing is not None and existing.managed:
                raise ConfigError(
                    f"collection {name!r} holds documents managed over the API (in "
                    f"{existing.folder}); reindex it without a path, or use another collection"
                )
            if existing is None:
                self._refuse_lookalike(name)
            created_at = existing.created_at if existing else _now()
            collection = Collection(name, self.root(name), folder, False, created_at, self._state)
            if record:
                self._write(collection)
        return collection

    def unlist(self, collection: Collection) -> None:
        """The first step of deleting a (non-default) collection: from now on it does not
        exist, for this process and every other, while its files are still there for the
        requests reading them to finish."""
        if collection.name == DEFAULT:
            raise BadRequest("the default collection cannot be deleted")
        self._records.remove(collection.name)

    def relist(self, collection: Collection) -> None:
        """Undo ``unlist``: a deletion that could not finish can be tried again."""
        self._write(collection)

    def remove_files(self, collection: Collection) -> None:
        """Delete what an unlisted collection keeps under the data directory: its index state
        and, if managed, its documents (their rows too, with PostgreSQL). The caller drops its
        Chroma collections first."""
        if collection.name == DEFAULT:
            raise BadRequest("the default collection cannot be deleted")
        collection.state.drop()
        if collection.managed:
            self._state.jobs().drop_documents(collection.name)
        shutil.rmtree(collection.root, ignore_errors=True)


class FileCollectionRecords:
    """The file layout's records: ``collection.json`` in each collection's folder (the default
    collection's at the top of the data directory, once a reindex pointed it at another folder
    than ``RAG_CORPUS_DIR``), listed by globbing, named under a ``flock``."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def _path(self, name: str) -> Path:
        return _root(self._data_dir, name) / _RECORD

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            raw: dict[str, Any] = json.loads(self._path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return raw

    def write(self, name: str, record: dict[str, Any]) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, record)

    def names(self) -> list[str]:
        # A folder collections/default/ is not where the default collection's record lives.
        found = [
            p.parent.name
            for p in (self._data_dir / "collections").glob(f"*/{_RECORD}")
            if p.parent.name != DEFAULT
        ]
        if self._path(DEFAULT).is_file():
            found.append(DEFAULT)
        return sorted(found)

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def naming(self) -> Iterator[None]:
        folder = self._data_dir / "collections"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".naming.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _is_name(name: str) -> bool:
    try:
        return check_name(name) == name
    except BadRequest:
        return False

"""The committed index: which collection and generation serve queries, and what each source holds.

Layout under ``data_dir``::

    CURRENT.json                      pointer to the served collection and generation
    manifests/<collection>.<gen>.json sources -> content hash and chunk ids, per generation
    bm25/<collection>.<gen>.<backend>/ the BM25 index of a generation
    bm25/tokens.sqlite                tokens by chunk id, so reindexing tokenises only new chunks
    chroma/                           the embedded Chroma database
    reindex.lock                      held by the one reindex allowed at a time
    failures.json                     the files the last reindex could not read, why, and
                                      the digest of the bytes that failed

A reindex writes its manifest first and then replaces ``CURRENT.json`` atomically; until that
rename, readers keep serving the previous generation, whatever happens to the reindex.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag_service.errors import IndexBusy
from rag_service.settings import Settings

# Bump when splitting or chunk-id rules change, so old indexes are rebuilt rather than mixed.
INDEX_FORMAT = 2


def index_fingerprint(settings: Settings) -> str:
    """All that shapes the vectors or the chunks; a different value forces a full rebuild."""
    identity = {
        "format": INDEX_FORMAT,
        "embedder": settings.embedder.identity,
        "chunk_size": settings.chunking.chunk_size,
        "chunk_overlap": settings.chunking.chunk_overlap,
    }
    chunking = settings.chunking
    if chunking.splitter != "recursive":  # added only then: the default's value stays as it was
        identity |= {"splitter": chunking.splitter, "threshold": chunking.semantic_threshold}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SourceEntry:
    sha256: str
    title: str
    chunk_ids: list[str] = field(default_factory=list)
    # Recorded since documents are managed over HTTP; manifests written before read as unknown.
    bytes: int | None = None
    indexed_at: str = ""
    encoding: str | None = None  # the text encoding it was read in; None for binary formats


Manifest = dict[str, SourceEntry]


@dataclass(frozen=True)
class Failure:
    error: str
    sha256: str | None  # of the bytes that failed; None: not read (too large, unreadable)


@dataclass(frozen=True)
class IndexPointer:
    collection: str
    generation: int
    fingerprint: str
    sources: int
    chunks: int
    committed_at: str


def new_pointer(store: str, generation: int, fingerprint: str, manifest: Manifest) -> IndexPointer:
    """The pointer a commit of ``generation`` (holding ``manifest``) writes, stamped now."""
    return IndexPointer(
        collection=store,
        generation=generation,
        fingerprint=fingerprint,
        sources=len(manifest),
        chunks=sum(len(entry.chunk_ids) for entry in manifest.values()),
        committed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def failures_record(failed: dict[str, Failure], context: str) -> dict[str, Any]:
    """What a reindex records of the files it could not read (both layouts store this)."""
    return {
        "failed": {path: f.error for path, f in failed.items()},
        "sha256": {path: f.sha256 for path, f in failed.items() if f.sha256},
        "context": context,
    }


def failed_reasons(record: dict[str, Any]) -> dict[str, str]:
    """Source -> reason, from a ``failures_record``."""
    return {str(k): str(v) for k, v in record.get("failed", {}).items()}


def known_failures_in(record: dict[str, Any], context: str) -> dict[str, Failure]:
    """The failures a ``failures_record`` holds under ``context`` whose bytes were read (so
    have a digest): the next reindex skips those files while their bytes stay the same."""
    if record.get("context") != context:
        return {}
    digests = record.get("sha256", {})
    return {
        str(path): Failure(str(error), str(digests[path]))
        for path, error in record.get("failed", {}).items()
        if path in digests
    }


def write_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(payload, fh, ensure_ascii=False, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class IndexState:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pointer_path = data_dir / "CURRENT.json"
        self.manifest_dir = data_dir / "manifests"
        self.bm25_dir = data_dir / "bm25"
        self.token_cache_path = self.bm25_dir / "tokens.sqlite"

    def _manifest_path(self, collection: str, generation: int) -> Path:
        return self.manifest_dir / f"{collection}.{generation}.json"

    def bm25_path(self, collection: str, generation: int, backend: str) -> Path:
        return self.bm25_dir / f"{collection}.{generation}.{backend}"

    def lexical_index(self, pointer: IndexPointer, backend: str) -> Path:
        return self.bm25_path(pointer.collection, pointer.generation, backend)

    def current(self) -> IndexPointer | None:
        try:
            raw = json.loads(self.pointer_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return IndexPointer(**raw)

    def pointer_stamp(self) -> tuple[int, int] | None:
        """Changes whenever a new pointer is committed; cheap enough to check on every request."""
        try:
            st = self.pointer_path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def manifest(self, pointer: IndexPointer) -> Manifest:
        raw = json.loads(
            self._manifest_path(pointer.collection, pointer.generation).read_text(encoding="utf-8")
        )
        return {source: SourceEntry(**entry) for source, entry in raw["sources"].items()}

    def commit(
        self, collection: str, generation: int, fingerprint: str, manifest: Manifest
    ) -> IndexPointer:
        self.manifest_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(
            self._manifest_path(collection, generation),
            {"sources": {source: asdict(entry) for source, entry in sorted(manifest.items())}},
        )
        previous = self.current()
        pointer = new_pointer(collection, generation, fingerprint, manifest)
        write_atomically(self.pointer_path, asdict(pointer))
        self.prune(pointer, previous)
        return pointer

    def share_lexical(self, pointer: IndexPointer, backend: str) -> None:
        """Already shared: every process of this data folder reads it at ``bm25_path``."""

    def prune(self, *keep: IndexPointer | None) -> None:
        """Drop files of generations older than the previous one, which readers may still hold."""
        stems = {f"{p.collection}.{p.generation}" for p in keep if p is not None}
        for path in self.manifest_dir.glob("*.json"):
            if path.stem not in stems:
                path.unlink(missing_ok=True)
        if self.bm25_dir.is_dir():
            for path in self.bm25_dir.iterdir():
                if path.is_dir() and path.name.rsplit(".", 1)[0] not in stems:
                    shutil.rmtree(path, ignore_errors=True)

    def drop(self) -> None:
        self.pointer_path.unlink(missing_ok=True)
        (self.data_dir / "failures.json").unlink(missing_ok=True)
        shutil.rmtree(self.manifest_dir, ignore_errors=True)
        shutil.rmtree(self.bm25_dir, ignore_errors=True)

    def record_failures(self, failed: dict[str, Failure], context: str) -> None:
        """What the last (not dry) reindex could not read, source -> reason and the digest of
        the bytes that failed: the documents listing shows the reason beside the manifest (which
        keeps serving a failed file's old chunks), and the next reindex skips a file whose bytes
        failed before under the same ``context`` (the settings that decide the outcome) instead
        of parsing it again. Written only when it changes."""
        payload = failures_record(failed, context)
        if payload != self._failures_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            write_atomically(self.data_dir / "failures.json", payload)

    def _failures_file(self) -> dict[str, Any]:
        try:
            raw: dict[str, Any] = json.loads(
                (self.data_dir / "failures.json").read_text(encoding="utf-8")
            )
        except FileNotFoundError:
            return {}
        return raw

    def last_failures(self) -> dict[str, str]:
        return failed_reasons(self._failures_file())

    def known_failures(self, context: str) -> dict[str, Failure]:
        return known_failures_in(self._failures_file(), context)

    @contextlib.contextmanager
    def reindex_lock(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "reindex.lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusy(f"another reindex is running on {self.data_dir}") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

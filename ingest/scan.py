"""Scan: what a folder holds now, against the manifest of the served generation.

Every supported file is hashed; an unchanged hash keeps its manifest entry untouched (the file is
not even parsed), new and changed files are loaded and split. A file that fails is reported and
keeps its previous chunks, if it had any.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.load import is_supported, load_document
from ingest.split import Splitter
from rag_service.errors import DocumentUnreadable
from rag_service.index_state import Manifest, SourceEntry
from rag_service.types import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedSource:
    path: str
    error: str


@dataclass(frozen=True)
class Scan:
    manifest: Manifest  # what the next generation holds, source by source
    chunks: tuple[Chunk, ...]  # of the new and changed files
    added: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]
    failed: tuple[FailedSource, ...]


def _source_files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and is_supported(path.name):
            yield rel.as_posix(), path


def scan(root: Path, previous: Manifest, splitter: Splitter) -> Scan:
    manifest: Manifest = {}
    chunks: list[Chunk] = []
    added: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    failed: list[FailedSource] = []
    for source, path in _source_files(root):
        old = previous.get(source)
        try:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if old is not None and old.sha256 == digest:
                manifest[source] = old
                unchanged.append(source)
                continue
            doc = load_document(source, data)
            pieces = splitter.split(doc)
            if not pieces:
                raise DocumentUnreadable(source, "no indexable text (only headings)")
        except OSError as exc:
            error = f"cannot read file: {exc.strerror or exc}"
        except DocumentUnreadable as exc:
            error = exc.reason
        else:
            manifest[source] = SourceEntry(digest, doc.title, [c.id for c in pieces])
            chunks.extend(pieces)
            (added if old is None else updated).append(source)
            continue
        log.warning("skipped %s: %s", source, error)
        failed.append(FailedSource(source, error))
        if old is not None:  # keep serving what we had rather than lose the document
            manifest[source] = old
    present = {*manifest, *(f.path for f in failed)}  # every file seen, indexed or not
    return Scan(
        manifest=manifest,
        chunks=tuple(chunks),
        added=tuple(added),
        updated=tuple(updated),
        deleted=tuple(sorted(set(previous) - present)),
        unchanged=tuple(unchanged),
        failed=tuple(failed),
    )

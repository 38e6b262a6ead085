"""Incremental, crash-safe reindexing of a folder.

1. Scan: hash every supported file; unchanged hashes keep their manifest entry untouched, new and
   changed files are loaded and split (a file that fails keeps its previous chunks, if any).
2. Plan: chunk ids come from content, so only ids the served generation lacks are embedded;
   ids it has but the folder no longer produces are retired.
3. Write generation g+1 beside g (adding, re-labelling, retiring) and its BM25 index, then
   commit the manifest and switch the pointer atomically. Nothing changed: nothing is opened or
   written (unless the configured BM25 backend has no index yet for the served generation).

A reindex that dies before the switch leaves generation g serving exactly as before; the next
run adopts the vectors it had already written and discards the rest.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.files import SkippedPath, list_sources, read_source
from ingest.load import load_document
from ingest.split import Splitter
from rag_service.embedders import build_embedder
from rag_service.errors import ConfigError, DocumentUnreadable
from rag_service.index import IndexState, Manifest, SourceEntry, index_fingerprint
from rag_service.protocols import Embedder, VectorStore
from rag_service.retrieval.bm25 import Bm25Index, TokenCache
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.stores import open_store
from rag_service.types import Chunk

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class FailedSource:
    path: str
    error: str


@dataclass
class ReindexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FailedSource] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)  # links out, loops, FIFOs...
    chunks_embedded: int = 0
    chunks_reused: int = 0  # vectors adopted from an interrupted run
    chunks_retired: int = 0
    chunks_total: int = 0
    full_rebuild: bool = False
    dry_run: bool = False
    generation: int | None = None  # the committed generation; None when nothing was written

    def summary(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "deleted": len(self.deleted),
            "unchanged": len(self.unchanged),
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "chunks": {
                "embedded": self.chunks_embedded,
                "reused": self.chunks_reused,
                "retired": self.chunks_retired,
                "total": self.chunks_total,
            },
            "full_rebuild": self.full_rebuild,
            "dry_run": self.dry_run,
            "generation": self.generation,
        }


@dataclass
class _Scan:
    manifest: Manifest
    new_chunks: list[Chunk]
    report: ReindexReport


def _scan(root: Path, previous: Manifest, splitter: Splitter, max_bytes: int) -> _Scan:
    report = ReindexReport()
    manifest: Manifest = {}
    new_chunks: list[Chunk] = []
    present: set[str] = set()
    listing = list_sources(root)
    for skipped in listing.skipped:
        log.warning("skipped %s: %s", skipped.path, skipped.reason)
    report.skipped = listing.skipped  # not present: a link indexed before is retired now
    for file in listing.files:
        source = file.source
        present.add(source)
        old = previous.get(source)
        try:
            data = read_source(file, max_bytes)
            digest = hashlib.sha256(data).hexdigest()
            if old is not None and old.sha256 == digest:
                manifest[source] = old
                report.unchanged.append(source)
                continue
            doc = load_document(source, data)
            chunks = splitter.split(doc)
            if not chunks:
                raise DocumentUnreadable(source, "no indexable text (only headings)")
        except OSError as exc:
            error = f"cannot read file: {exc.strerror or exc}"
        except DocumentUnreadable as exc:
            error = exc.reason
        except Exception as exc:  # a bug in the splitter must cost one file, never the run
            log.debug("cannot index %s", source, exc_info=True)
            error = f"cannot index: {type(exc).__name__}: {str(exc)[:200]}"
        else:
            manifest[source] = SourceEntry(digest, doc.title, [c.id for c in chunks])
            new_chunks.extend(chunks)
            (report.added if old is None else report.updated).append(source)
            continue
        log.warning("skipped %s: %s", source, error)
        report.failed.append(FailedSource(source, error))
        if old is not None:  # keep serving what we had rather than lose the document
            manifest[source] = old
    report.deleted = sorted(set(previous) - present)
    return _Scan(manifest, new_chunks, report)


def collection_name(settings: Settings, fingerprint: str) -> str:
    return f"{settings.store.collection_prefix}-{fingerprint[:16]}"


def reindex(
    settings: Settings,
    root: Path | None = None,
    *,
    embedder: Embedder | None = None,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
) -> ReindexReport:
    root = (root or settings.corpus_dir).resolve()
    if not root.is_dir():
        raise ConfigError(f"not a folder: {root}")
    if embedder is not None and embedder.model_id != settings.embedder.model:
        raise ConfigError(
            f"embedder {embedder.model_id!r} does not match the setting {settings.embedder.model!r}"
        )
    state = IndexState(settings.data_dir)
    with state.reindex_lock():
        pointer = state.current()
        fingerprint = index_fingerprint(settings)
        rebuild = pointer is None or pointer.fingerprint != fingerprint
        previous = {} if rebuild or pointer is None else state.manifest(pointer)
        scan = _scan(root, previous, Splitter(settings.chunking), settings.ingest.max_file_bytes)
        report = scan.report
        report.full_rebuild, report.dry_run = rebuild, dry_run

        live_before = {cid for entry in previous.values() for cid in entry.chunk_ids}
        live_after = {cid for entry in scan.manifest.values() for cid in entry.chunk_ids}
        to_add = [c for c in scan.new_chunks if c.id not in live_before]
        moved = [c for c in scan.new_chunks if c.id in live_before]
        to_retire = live_before - live_after
        report.chunks_total = len(live_after)
        report.chunks_retired = len(to_retire)
        report.chunks_embedded = len(to_add)
        if dry_run:
            return report
        if pointer is not None and not rebuild and scan.manifest == previous:
            if not state.bm25_path(
                pointer.collection, pointer.generation, settings.retrieval.bm25_backend
            ).exists():  # e.g. another BM25 backend was configured since
                store = open_store(settings, pointer.collection)
                try:
                    _build_bm25(settings, state, store, pointer.generation, previous, {})
                finally:
                    store.close()
            return report

        collection = collection_name(settings, fingerprint)
        generation = (pointer.generation if pointer else 0) + 1
        committed = 0 if rebuild or pointer is None else pointer.generation
        store = open_store(settings, collection, create=True)
        try:
            adopted = store.reset_uncommitted(committed, {c.id for c in to_add}, generation)
            store.purge_retired(up_to=committed)
            pending = [c for c in to_add if c.id not in adopted]
            report.chunks_reused = len(adopted)
            report.chunks_embedded = len(pending)
            if pending:
                _embed_into(
                    store,
                    pending,
                    generation,
                    embedder or build_embedder(settings.embedder),
                    step=settings.embedder.batch_size * 16,
                    progress=progress,
                )
            store.update_metadata(moved)
            store.retire(to_retire, generation)
            fresh = {chunk.id: chunk for chunk in scan.new_chunks}
            _build_bm25(settings, state, store, generation, scan.manifest, fresh)
        finally:
            store.close()
        state.commit(collection, generation, fingerprint, scan.manifest)
        report.generation = generation
        log.info("committed generation %d: %d chunks", generation, len(live_after))
        if pointer is not None and pointer.collection != collection:
            old_store = open_store(settings, pointer.collection)
            old_store.drop()
            old_store.close()
        return report


def _build_bm25(
    settings: Settings,
    state: IndexState,
    store: VectorStore,
    generation: int,
    manifest: Manifest,
    fresh: dict[str, Chunk],
) -> None:
    """Write the BM25 index of `generation`: tokens come from the cache, the new chunks, or
    (for chunks indexed before the cache existed) the store."""
    sources = sorted(manifest)
    ids = [cid for source in sources for cid in manifest[source].chunk_ids]
    cache = TokenCache(state.token_cache_path)
    try:
        tokens = cache.get_many(ids)
        missing = [cid for cid in ids if cid not in tokens]
        stored = store.get([cid for cid in missing if cid not in fresh])
        new = {
            c.id: tokenize(c.embedding_text)
            for c in [*(fresh[i] for i in missing if i in fresh), *stored]
        }
        cache.put_many(new.items())
        tokens.update(new)
        index = Bm25Index.build(
            ids,
            [source for source in sources for _ in manifest[source].chunk_ids],
            [tokens[cid] for cid in ids],
            settings.retrieval.bm25_backend,
        )
        path = state.bm25_path(store.collection_name, generation, settings.retrieval.bm25_backend)
        shutil.rmtree(path, ignore_errors=True)  # left by an interrupted run
        index.save(path)
        cache.keep_only(set(ids))
    finally:
        cache.close()
    log.info("built the BM25 index of generation %d: %d chunks", generation, len(ids))


def _embed_into(
    store: VectorStore,
    chunks: list[Chunk],
    generation: int,
    embedder: Embedder,
    *,
    step: int,
    progress: ProgressFn | None,
) -> None:
    # Longest first fills each batch with similar lengths, so less padding is embedded.
    ordered = sorted(chunks, key=lambda c: len(c.embedding_text), reverse=True)
    for start in range(0, len(ordered), step):
        batch = ordered[start : start + step]
        store.add(batch, embedder.embed_documents([c.embedding_text for c in batch]), generation)
        done = start + len(batch)
        log.info("embedded %d/%d chunks", done, len(ordered))
        if progress is not None:
            progress(done, len(ordered))

"""Incremental, crash-safe reindexing of a folder: scan, plan, write a generation, commit.

1. Scan (``ingest/scan.py``): hash every file; load and split only new and changed ones.
2. Plan (``plan``, pure): chunk ids come from content, so only ids the served generation lacks
   are embedded; ids it has but the folder no longer produces are retired.
3. Write generation g+1 beside g (``ingest/generation.py``: adding, re-labelling, retiring, and
   its BM25 index), then commit the manifest and switch the pointer atomically. Nothing changed:
   nothing is opened or written (unless the configured BM25 backend has no index yet for the
   served generation).

A reindex that dies before the switch leaves generation g serving exactly as before; the next
run adopts the vectors it had already written and discards the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.files import SkippedPath
from ingest.generation import ProgressFn, VectorsFn, build_bm25, write_generation
from ingest.load import is_supported
from ingest.scan import FailedSource, Scan, ScanLimits, scan
from ingest.split import Splitter
from rag_service.collections import DEFAULT, Collections, store_name
from rag_service.embedders import build_embedder
from rag_service.errors import ConfigError, ReindexCancelled
from rag_service.index_state import (
    Failure,
    IndexPointer,
    Manifest,
    index_fingerprint,
)
from rag_service.protocols import Embedder, IndexRecords, Vectors
from rag_service.settings import Settings
from rag_service.state import open_state
from rag_service.stores import open_store
from rag_service.types import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What the next generation changes against the previous one."""

    manifest: Manifest
    embed: tuple[Chunk, ...]  # chunks the previous generation lacks
    relabel: tuple[Chunk, ...]  # chunks it has (same text), whose offsets or title may differ
    retire: frozenset[str]  # ids it has that the folder no longer produces
    chunks_total: int
    changed: bool  # False: the folder matches the previous generation, nothing to write


def plan(previous: Manifest, scanned: Scan) -> Plan:
    live_before = {cid for entry in previous.values() for cid in entry.chunk_ids}
    live_after = {cid for entry in scanned.manifest.values() for cid in entry.chunk_ids}
    return Plan(
        manifest=scanned.manifest,
        embed=tuple(c for c in scanned.chunks if c.id not in live_before),
        relabel=tuple(c for c in scanned.chunks if c.id in live_before),
        retire=frozenset(live_before - live_after),
        chunks_total=len(live_after),
        changed=scanned.manifest != previous,
    )


@dataclass(frozen=True)
class ReindexReport:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]
    failed: tuple[FailedSource, ...]
    skipped: tuple[SkippedPath, ...]  # links out of the folder, loops, FIFOs...
    chunks_embedded: int
    chunks_reused: int  # vectors adopted from an interrupted run
    chunks_retired: int
    chunks_total: int
    full_rebuild: bool
    dry_run: bool
    generation: int | None  # the committed generation; None when nothing was written

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


def reindex(
    settings: Settings,
    root: Path | None = None,
    *,
    collection: str = DEFAULT,
    embedder: Embedder | None = None,
    dry_run: bool = False,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ReindexReport:
    """Make ``collection`` hold what ``root`` holds. ``root`` may be left out for a collection
    that has a folder (``default``: ``RAG_CORPUS_DIR``; a managed one: its own).

    ``cancelled`` is asked before each embedding batch; once it answers True the run raises
    ``ReindexCancelled`` and commits nothing (the served generation stays as it was)."""
    if root is None and collection == DEFAULT:
        root = settings.corpus_dir
    if root is not None and not root.is_dir():
        raise ConfigError(f"not a folder: {root.resolve()}")
    if embedder is not None and embedder.model_id != settings.embedder.model:
        raise ConfigError(
            f"embedder {embedder.model_id!r} does not match the setting {settings.embedder.model!r}"
        )
    store = open_state(settings)
    collections = Collections(settings.data_dir, settings.corpus_dir, store)
    state = collections.records(collection)
    with state.reindex_lock():
        target = collections.for_reindex(collection, root, record=not dry_run)
        if target.managed:
            # With PostgreSQL the documents are rows, and this host's folder a copy to update.
            store.jobs().checkout(collection, target.folder)
        pointer = state.current()
        fingerprint = index_fingerprint(settings)
        rebuild = pointer is None or pointer.fingerprint != fingerprint
        previous = {} if rebuild or pointer is None else state.manifest(pointer)
        model = embedder or build_embedder(settings.embedder)  # loads on first use
        splitter = Splitter(settings.chunking, model)
        failing = state.last_failures()
        # Failures are remembered under what decides them: the chunking (in the fingerprint)
        # and the chunk cap; a change of either reads every failed file again.
        context = f"{fingerprint}:{settings.ingest.max_file_chunks}"
        limits = ScanLimits(settings.ingest.max_file_bytes, settings.ingest.max_file_chunks)
        scanned = scan(target.folder, previous, splitter, limits, state.known_failures(context))
        planned = plan(previous, scanned)
        reused, generation = 0, None
        if not dry_run and pointer is not None and not rebuild and not planned.changed:
            _ensure_bm25(settings, state, pointer, previous)
        elif not dry_run:
            generation = (pointer.generation if pointer else 0) + 1
            name = store_name(settings.store.collection_prefix, collection, fingerprint)
            committed = 0 if rebuild or pointer is None else pointer.generation
            vectors = _batched(model, settings.embedder.batch_size, cancelled)
            reused = _write(
                settings, state, name, committed, generation, planned, scanned, vectors, progress
            )
            state.commit(name, generation, fingerprint, planned.manifest)
            log.info("committed generation %d: %d chunks", generation, planned.chunks_total)
            if pointer is not None and pointer.collection != name:
                old_store = open_store(settings, pointer.collection)
                old_store.drop()
                old_store.close()
        if not dry_run:
            state.record_failures(
                {f.path: Failure(f.error, f.sha256) for f in scanned.failed}, context
            )
    return ReindexReport(
        added=scanned.added,
        updated=scanned.updated,
        deleted=_gone(scanned, failing),
        unchanged=scanned.unchanged,
        failed=scanned.failed,
        skipped=scanned.skipped,
        chunks_embedded=len(planned.embed) - reused,  # the reused were embedded by an earlier run
        chunks_reused=reused,
        chunks_retired=len(planned.retire),
        chunks_total=planned.chunks_total,
        full_rebuild=rebuild,
        dry_run=dry_run,
        generation=generation,
    )


def _gone(scanned: Scan, failing: Iterable[str]) -> tuple[str, ...]:
    """The documents no longer in the folder: those the index held, and those that only ever
    failed to index (the API lists them as documents too, so deleting one counts)."""
    present = {*scanned.manifest, *(f.path for f in scanned.failed)}
    return tuple(sorted({*scanned.deleted, *(p for p in failing if p not in present)}))


def _write(
    settings: Settings,
    state: IndexRecords,
    collection: str,
    committed: int,
    generation: int,
    planned: Plan,
    scanned: Scan,
    vectors: VectorsFn,
    progress: ProgressFn | None,
) -> int:
    """Write ``generation`` from the plan after undoing what an interrupted run left; returns
    how many of the chunks to embed were adopted from that run instead."""
    store = open_store(settings, collection, create=True)
    try:
        adopted = store.reset_uncommitted(committed, {c.id for c in planned.embed}, generation)
        store.purge_retired(up_to=committed)
        write_generation(
            settings,
            state,
            store,
            generation,
            planned.manifest,
            add=[c for c in planned.embed if c.id not in adopted],
            vectors=vectors,
            relabel=planned.relabel,
            retire=planned.retire,
            known=scanned.chunks,
            progress=progress,
        )
    finally:
        store.close()
    return len(adopted)


def _batched(model: Embedder, size: int, cancelled: Callable[[], bool]) -> VectorsFn:
    """Embed in the model's own batch size, asking ``cancelled`` before each: a cancel waits
    for one batch (a few chunks), not for a whole progress step."""

    def vectors(chunks: Sequence[Chunk]) -> Vectors:
        parts = []
        for start in range(0, len(chunks), size):
            if cancelled():
                raise ReindexCancelled("the reindex was cancelled")
            batch = chunks[start : start + size]
            parts.append(model.embed_documents([c.embedding_text for c in batch]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    return vectors


def _ensure_bm25(
    settings: Settings, state: IndexRecords, pointer: IndexPointer, manifest: Manifest
) -> None:
    """The served generation's BM25 index for the configured backend, built if missing (e.g.
    another BM25 backend was configured since it was written), and shared with every process
    that serves it (PostgreSQL: the other hosts fetch it from there)."""
    backend = settings.retrieval.bm25_backend
    if not state.lexical_index(pointer, backend).exists():
        store = open_store(settings, pointer.collection)
        try:
            build_bm25(settings, state, store, pointer.generation, manifest, {})
        finally:
            store.close()
    state.share_lexical(pointer, backend)


class FolderIndexer:
    """The ``Indexer`` the API's document jobs run: this reindex, with the embedder the service
    gives its jobs (its own instance, so a job never holds the queries' model)."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self._settings = settings
        self._embedder = embedder

    def reindex(
        self,
        collection: str,
        folder: Path,
        progress: Callable[[int, int], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        report = reindex(
            self._settings,
            folder,
            collection=collection,
            embedder=self._embedder,
            progress=progress,
            cancelled=cancelled,
        )
        return report.summary()

    def supports(self, source: str) -> bool:
        return is_supported(source)

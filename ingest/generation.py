"""Write one index generation: vectors into the store, then its BM25 index beside them.

The one step every writer of an index shares (``rag reindex``, and the benchmark that commits a
synthetic corpus); committing the pointer is the caller's next step (``IndexRecords.commit``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Collection, Sequence

from rag_service.index_state import Manifest
from rag_service.protocols import IndexRecords, Vectors, VectorStore
from rag_service.retrieval.bm25 import Bm25Index, TokenCache
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.types import Chunk

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
VectorsFn = Callable[[Sequence[Chunk]], Vectors]  # one row per chunk, in order


def write_generation(
    settings: Settings,
    state: IndexRecords,
    store: VectorStore,
    generation: int,
    manifest: Manifest,
    *,
    add: Sequence[Chunk],
    vectors: VectorsFn,
    relabel: Sequence[Chunk] = (),
    retire: Collection[str] = (),
    known: Sequence[Chunk] = (),
    progress: ProgressFn | None = None,
) -> None:
    """Make ``generation`` of ``store`` hold ``manifest``: ``add`` chunks with their vectors,
    refresh the offsets and titles of ``relabel``, hide ``retire``, and build its BM25 index.

    ``known`` are further chunks whose text is at hand, so BM25 need not read them back.
    """
    _add(store, add, generation, vectors, step=settings.embedder.batch_size * 16, progress=progress)
    store.update_metadata(relabel)
    store.retire(retire, generation)
    build_bm25(settings, state, store, generation, manifest, {c.id: c for c in (*known, *add)})


def build_bm25(
    settings: Settings,
    state: IndexRecords,
    store: VectorStore,
    generation: int,
    manifest: Manifest,
    fresh: dict[str, Chunk],
) -> None:
    """Write the BM25 index of `generation`: tokens come from the cache, the new chunks, or
    (for chunks indexed before the cache existed) the store."""
    backend = settings.retrieval.bm25_backend
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
            backend,
        )
        path = state.bm25_path(store.collection_name, generation, backend)
        shutil.rmtree(path, ignore_errors=True)  # left by an interrupted run
        index.save(path)
        cache.keep_only(set(ids))
    finally:
        cache.close()
    log.info("built the BM25 index of generation %d: %d chunks", generation, len(ids))


def _add(
    store: VectorStore,
    chunks: Sequence[Chunk],
    generation: int,
    vectors: VectorsFn,
    *,
    step: int,
    progress: ProgressFn | None,
) -> None:
    # Longest first fills each batch with similar lengths, so less padding is embedded.
    ordered = sorted(chunks, key=lambda c: len(c.embedding_text), reverse=True)
    for start in range(0, len(ordered), step):
        batch = ordered[start : start + step]
        store.add(batch, vectors(batch), generation)
        done = start + len(batch)
        log.info("embedded %d/%d chunks", done, len(ordered))
        if progress is not None:
            progress(done, len(ordered))

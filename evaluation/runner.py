"""Index an evaluation set into a temporary index and score every system on every question."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.datasets import EvalSet, load_eval_set
from evaluation.langchain_baseline import build_langchain_ensemble
from evaluation.metrics import dedupe, summarise
from ingest.reindex import reindex
from rag_service.embedders import build_embedder
from rag_service.embedders.cache import CachedEmbedder
from rag_service.index_state import IndexState
from rag_service.rerankers import build_reranker
from rag_service.serving import SearchService, ServedIndex
from rag_service.settings import EmbedderSettings, Settings
from rag_service.stores.chroma import persistent_client

log = logging.getLogger(__name__)

# Chunks retrieved per question; enough to reach ten distinct documents almost always.
DEPTH = 50

System = Callable[[str], list[str]]  # question -> sources of the ranked chunks


def _systems(
    served: ServedIndex, service: SearchService, source_of: dict[str, str]
) -> dict[str, System]:
    hybrid = served.retriever

    def ours(question: str) -> list[str]:
        return [p.chunk.source for p in service.search(question, DEPTH).passages]

    def bm25(question: str) -> list[str]:
        return [source_of[h.chunk_id] for h in hybrid.bm25.retrieve(question, DEPTH)]

    def dense(question: str) -> list[str]:
        return [source_of[h.chunk_id] for h in hybrid.dense.retrieve(question, DEPTH)]

    return {"ours": ours, "bm25": bm25, "dense": dense}


def _score(system: System, eval_set: EvalSet) -> dict[str, float]:
    rankings, latencies = [], []
    for q in eval_set.questions:
        started = time.perf_counter()
        sources = system(q.question)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings.append(dedupe(sources)[:10])
    return summarise(rankings, [q.gold for q in eval_set.questions], latencies)


@dataclass
class PreparedSet:
    eval_set: EvalSet
    settings: Settings
    embedder: CachedEmbedder
    service: SearchService
    served: ServedIndex
    source_of: dict[str, str]  # chunk id -> source
    chunks: int


def cached_embedder(settings: EmbedderSettings, cache_path: Path) -> CachedEmbedder:
    """The configured embedder behind the evaluation cache, its entries named by what decides
    the vectors (backend, model, int8)."""
    return CachedEmbedder(build_embedder(settings), cache_path, "|".join(settings.identity))


@contextmanager
def prepared_set(
    dataset_dir: Path, settings: Settings, cache_path: Path, limit: int | None = None
) -> Iterator[PreparedSet]:
    """The set indexed into a temporary index, with every question's vector in the cache."""
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        eval_set = load_eval_set(dataset_dir, Path(tmp))
        if limit is not None:
            eval_set.questions[limit:] = []
        run_settings = settings.model_copy(update={"data_dir": Path(tmp) / "index"})
        embedder = cached_embedder(settings.embedder, cache_path)
        service = SearchService(run_settings, embedder, build_reranker(settings, embedder))
        try:
            report = reindex(run_settings, eval_set.documents, embedder=embedder)
            log.info("indexed %d chunks (%d embedded)", report.chunks_total, embedder.misses)
            for q in eval_set.questions:  # as queries: an asymmetric model embeds them otherwise
                embedder.embed_query(q.question)
            state = IndexState(run_settings.data_dir)
            with service.current() as served:
                manifest = state.manifest(served.pointer)
                source_of = {cid: src for src, entry in manifest.items() for cid in entry.chunk_ids}
                yield PreparedSet(
                    eval_set,
                    run_settings,
                    embedder,
                    service,
                    served,
                    source_of,
                    report.chunks_total,
                )
        finally:
            service.close()
            embedder.close()


def evaluate(
    dataset_dir: Path,
    settings: Settings,
    *,
    baselines: bool,
    cache_path: Path,
    limit: int | None = None,
) -> dict[str, Any]:
    with prepared_set(dataset_dir, settings, cache_path, limit) as prepared:
        systems = _systems(prepared.served, prepared.service, prepared.source_of)
        if baselines:
            chunks = prepared.served.store.get(list(prepared.source_of))
            client = persistent_client(prepared.settings.data_dir / "chroma")
            systems["langchain_ensemble"] = build_langchain_ensemble(
                chunks, client, prepared.served.pointer.collection, prepared.embedder, DEPTH
            )
        else:
            systems = {"ours": systems["ours"]}
        results = {name: _score(system, prepared.eval_set) for name, system in systems.items()}
    return {
        "dataset": prepared.eval_set.name,
        "questions": len(prepared.eval_set.questions),
        "chunks": prepared.chunks,
        "systems": results,
    }

"""Hybrid retrieval: BM25 and dense lists, fused, optionally reranked, with per-stage detail."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from rag_service.protocols import Embedder, Reranker, Retriever, VectorStore
from rag_service.retrieval.bigrams import bigram_share, cjk_bigrams
from rag_service.retrieval.bm25 import Bm25Index
from rag_service.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from rag_service.retrieval.tokenize import CJK_CHAR, tokenize
from rag_service.settings import RetrievalSettings
from rag_service.types import Chunk, ScoredId

_LATIN_WORD = re.compile(r"[A-Za-z]+")


def query_language(text: str) -> str:
    """'zh' when the text has at least two Chinese characters per Latin-script word, else 'en'.

    Counting words, not letters, keeps "RecursiveCharacterTextSplitter 按什么切分？" Chinese and
    "What does 注意力 mean in a transformer?" English.
    """
    chinese = len(CJK_CHAR.findall(text))
    return "zh" if chinese and chinese >= 2 * len(_LATIN_WORD.findall(text)) else "en"


@dataclass(frozen=True)
class SearchFilters:
    sources: frozenset[str] | None = None
    source_prefix: str | None = None

    @property
    def active(self) -> bool:
        return self.sources is not None or self.source_prefix is not None

    def accepts(self, source: str) -> bool:
        if self.sources is not None and source not in self.sources:
            return False
        return self.source_prefix is None or source.startswith(self.source_prefix)


class DenseRetriever:
    def __init__(self, embedder: Embedder, store: VectorStore, generation: int) -> None:
        self._embedder = embedder
        self._store = store
        self._generation = generation

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        return self._store.search(self._embedder.embed_query(query), k, self._generation, accept)


class Bm25Retriever:
    def __init__(self, index: Bm25Index) -> None:
        self._index = index

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        return self._index.search(tokenize(query), k, accept)


@dataclass(frozen=True)
class RetrievedPassage:
    chunk: Chunk
    score: float  # the final ranking score: rerank score if reranked, else fused (+ bigram boost)
    fused_score: float
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    bigram_share: float | None  # Chinese queries: share of the query's character pairs held
    rerank_score: float | None


@dataclass(frozen=True)
class Retrieval:
    passages: list[RetrievedPassage]
    language: str
    timings_ms: dict[str, float]


class HybridRetriever:
    def __init__(
        self,
        bm25: Retriever,
        dense: Retriever,
        store: VectorStore,
        settings: RetrievalSettings,
        reranker: Reranker | None = None,
    ) -> None:
        self.bm25 = bm25
        self.dense = dense
        self._store = store
        self._settings = settings
        self._reranker = reranker

    def weights(self, language: str) -> tuple[float, float]:
        s = self._settings
        if language == "zh":
            return s.bm25_weight_zh, s.dense_weight_zh
        return s.bm25_weight_en, s.dense_weight_en

    def fuse(self, bm25: list[ScoredId], dense: list[ScoredId], language: str) -> list[ScoredId]:
        weights = self.weights(language)
        if self._settings.fusion == "score":
            return weighted_score_fusion([bm25, dense], weights)
        return reciprocal_rank_fusion([bm25, dense], weights, k=self._settings.rrf_k)

    def search(self, query: str, top_k: int, filters: SearchFilters | None = None) -> Retrieval:
        accept = filters.accepts if filters is not None and filters.active else None
        depth = max(self._settings.candidates, top_k)
        language = query_language(query)
        clock = time.perf_counter()
        bm25 = self.bm25.retrieve(query, depth, accept)
        t_bm25 = time.perf_counter()
        dense = self.dense.retrieve(query, depth, accept)
        t_dense = time.perf_counter()
        fused = self.fuse(bm25, dense, language)
        t_fused = time.perf_counter()

        boost = self._settings.bigram_weight_zh if language == "zh" else 0.0
        grams = cjk_bigrams(query) if boost else frozenset()
        deep = self._reranker is not None or bool(grams)
        shortlist = fused[: max(top_k, self._settings.rerank_depth) if deep else top_k]
        chunks = self._store.get([hit.chunk_id for hit in shortlist])
        by_id = {chunk.id: chunk for chunk in chunks}
        shortlist = [hit for hit in shortlist if hit.chunk_id in by_id]
        fused_scores = {hit.chunk_id: hit.score for hit in shortlist}
        shares: dict[str, float] = {}
        if grams:
            shares = {h.chunk_id: bigram_share(grams, by_id[h.chunk_id].text) for h in shortlist}
            boosted = [
                ScoredId(h.chunk_id, h.score + boost * shares[h.chunk_id]) for h in shortlist
            ]
            shortlist = sorted(boosted, key=lambda hit: -hit.score)  # stable: ties keep fused order
        rerank_scores: dict[str, float] = {}
        if self._reranker is not None and shortlist:
            scores = self._reranker.rerank(query, [by_id[hit.chunk_id] for hit in shortlist])
            rerank_scores = {h.chunk_id: s for h, s in zip(shortlist, scores, strict=True)}
            shortlist.sort(key=lambda hit: -rerank_scores[hit.chunk_id])
        t_rerank = time.perf_counter()

        bm25_pos = {hit.chunk_id: (rank, hit.score) for rank, hit in enumerate(bm25, start=1)}
        dense_pos = {hit.chunk_id: (rank, hit.score) for rank, hit in enumerate(dense, start=1)}
        passages = []
        for hit in shortlist[:top_k]:
            b_rank, b_score = bm25_pos.get(hit.chunk_id, (None, None))
            d_rank, d_score = dense_pos.get(hit.chunk_id, (None, None))
            rerank = rerank_scores.get(hit.chunk_id)
            passages.append(
                RetrievedPassage(
                    chunk=by_id[hit.chunk_id],
                    score=rerank if rerank is not None else hit.score,
                    fused_score=fused_scores[hit.chunk_id],
                    bm25_rank=b_rank,
                    bm25_score=b_score,
                    dense_rank=d_rank,
                    dense_score=d_score,
                    bigram_share=shares.get(hit.chunk_id),
                    rerank_score=rerank,
                )
            )
        timings = {
            "bm25": (t_bm25 - clock) * 1000,
            "dense": (t_dense - t_bm25) * 1000,
            "fusion": (t_fused - t_dense) * 1000,
            "rerank_and_fetch": (t_rerank - t_fused) * 1000,
            "total": (t_rerank - clock) * 1000,
        }
        return Retrieval(passages, language, timings)

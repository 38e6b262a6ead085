"""Hybrid search: BM25 and dense lists, fused with weights for the pair of languages (the
query's and its passages'), shortlisted, bigram-boosted for Chinese queries, optionally
reranked, with each passage's per-stage detail."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from rag_service.protocols import Reranker, Retriever, VectorStore
from rag_service.retrieval.bigrams import boost, cjk_bigrams
from rag_service.retrieval.dense import DenseRetriever
from rag_service.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from rag_service.retrieval.language import passage_language, query_language
from rag_service.retrieval.results import Retrieval, RetrievedPassage, SearchFilters, SearchTimings
from rag_service.settings import RetrievalSettings
from rag_service.types import Chunk, ScoredId


def fusion_weights(
    settings: RetrievalSettings, language: str, passages: str | None
) -> tuple[float, float]:
    """BM25's and the dense list's weights for a query in `language` whose passages are in
    `passages` (None: not looked at, taken to be the query's)."""
    if passages is not None and passages != language:
        return settings.bm25_weight_cross, settings.dense_weight_cross
    if language == "zh":
        return settings.bm25_weight_zh, settings.dense_weight_zh
    return settings.bm25_weight_en, settings.dense_weight_en


class HybridRetriever:
    def __init__(
        self,
        bm25: Retriever,
        dense: DenseRetriever,  # answering also asks it for the query's vector, as searched
        store: VectorStore,
        settings: RetrievalSettings,
        reranker: Reranker | None = None,
    ) -> None:
        self.bm25 = bm25
        self.dense = dense
        self._store = store
        self._settings = settings
        self._reranker = reranker

    def fuse(
        self,
        bm25: list[ScoredId],
        dense: list[ScoredId],
        language: str,
        passages: str | None,
    ) -> list[ScoredId]:
        weights = fusion_weights(self._settings, language, passages)
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
        passage_lang, known = self._passage_language(dense)
        fused = self.fuse(bm25, dense, language, passage_lang)
        t_fused = time.perf_counter()
        grams = cjk_bigrams(query) if language == "zh" and self._settings.bigram_weight_zh else None
        deep = self._reranker is not None or bool(grams)
        shortlist, chunks = self._fetch(
            fused[: max(top_k, self._settings.rerank_depth) if deep else top_k], known
        )
        fused_scores = {hit.chunk_id: hit.score for hit in shortlist}
        shares: dict[str, float] = {}
        if grams:
            texts = {cid: chunk.text for cid, chunk in chunks.items()}
            shortlist, shares = boost(shortlist, texts, grams, self._settings.bigram_weight_zh)
        shortlist, rerank_scores = self._rerank(query, shortlist, chunks)
        t_shortlist = time.perf_counter()
        timings = SearchTimings(
            bm25_ms=(t_bm25 - clock) * 1000,
            dense_ms=(t_dense - t_bm25) * 1000,
            fusion_ms=(t_fused - t_dense) * 1000,
            shortlist_ms=(t_shortlist - t_fused) * 1000,
        )
        passages = _passages(
            shortlist[:top_k], chunks, bm25, dense, fused_scores, shares, rerank_scores
        )
        return Retrieval(passages, language, timings)

    def _passage_language(self, dense: list[ScoredId]) -> tuple[str | None, dict[str, Chunk]]:
        """The language of the dense list's top passages (it finds them in either language,
        BM25 only in the query's), and those chunks; None when it is not looked at."""
        top = [hit.chunk_id for hit in dense[: self._settings.passage_language_depth]]
        if not top:
            return None, {}
        chunks = {chunk.id: chunk for chunk in self._store.get(top)}
        languages = [query_language(chunks[cid].text) for cid in top if cid in chunks]
        return passage_language(languages), chunks

    def _fetch(
        self, shortlist: list[ScoredId], known: Mapping[str, Chunk]
    ) -> tuple[list[ScoredId], dict[str, Chunk]]:
        """The shortlist's chunks (from the store unless `known`); hits the store no longer
        holds are left out."""
        chunks = {h.chunk_id: known[h.chunk_id] for h in shortlist if h.chunk_id in known}
        missing = [h.chunk_id for h in shortlist if h.chunk_id not in known]
        if missing:
            chunks.update((chunk.id, chunk) for chunk in self._store.get(missing))
        return [hit for hit in shortlist if hit.chunk_id in chunks], chunks

    def _rerank(
        self, query: str, shortlist: list[ScoredId], chunks: Mapping[str, Chunk]
    ) -> tuple[list[ScoredId], dict[str, float]]:
        if self._reranker is None or not shortlist:
            return shortlist, {}
        scores = self._reranker.rerank(query, [chunks[hit.chunk_id] for hit in shortlist])
        by_id = {hit.chunk_id: score for hit, score in zip(shortlist, scores, strict=True)}
        return sorted(shortlist, key=lambda hit: -by_id[hit.chunk_id]), by_id


def _passages(
    hits: Sequence[ScoredId],
    chunks: Mapping[str, Chunk],
    bm25: Sequence[ScoredId],
    dense: Sequence[ScoredId],
    fused_scores: Mapping[str, float],
    shares: Mapping[str, float],
    rerank_scores: Mapping[str, float],
) -> tuple[RetrievedPassage, ...]:
    """Each hit with why it came up: its rank and score in each list, and each stage's score."""
    bm25_pos = {hit.chunk_id: (rank, hit.score) for rank, hit in enumerate(bm25, start=1)}
    dense_pos = {hit.chunk_id: (rank, hit.score) for rank, hit in enumerate(dense, start=1)}
    passages = []
    for hit in hits:
        b_rank, b_score = bm25_pos.get(hit.chunk_id, (None, None))
        d_rank, d_score = dense_pos.get(hit.chunk_id, (None, None))
        rerank = rerank_scores.get(hit.chunk_id)
        passages.append(
            RetrievedPassage(
                chunk=chunks[hit.chunk_id],
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
    return tuple(passages)

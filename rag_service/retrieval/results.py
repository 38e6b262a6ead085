"""What a search takes and gives back: filters in; passages with their per-stage detail and the
stage timings out. Plain frozen values, read by the API, the answerer and the metrics."""

from __future__ import annotations

from dataclasses import dataclass

from rag_service.types import Chunk


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
class SearchTimings:
    """Milliseconds per stage of one search. ``shortlist_ms`` covers what follows fusion:
    fetching the shortlisted chunks, the bigram boost and the reranker (when either runs)."""

    bm25_ms: float
    dense_ms: float
    fusion_ms: float
    shortlist_ms: float

    @property
    def retrieve_ms(self) -> float:
        """Both retrievers and their fusion: the search up to the shortlist."""
        return self.bm25_ms + self.dense_ms + self.fusion_ms

    @property
    def total_ms(self) -> float:
        return self.retrieve_ms + self.shortlist_ms

    def as_dict(self) -> dict[str, float]:
        """The ``timings_ms`` of a search response."""
        return {
            "bm25": self.bm25_ms,
            "dense": self.dense_ms,
            "fusion": self.fusion_ms,
            "rerank_and_fetch": self.shortlist_ms,
            "total": self.total_ms,
        }


@dataclass(frozen=True)
class Retrieval:
    passages: tuple[RetrievedPassage, ...]
    language: str
    timings: SearchTimings

"""Fusing ranked lists: pure functions, no I/O.

Reciprocal-rank fusion (Cormack et al., 2009) uses only ranks, so it needs no calibration
between BM25 scores and cosine similarities; `weighted_score_fusion` min-max normalises each
list's scores and adds them, which keeps how far ahead a result is, at the cost of trusting the
scores' scale.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rag_service.types import ScoredId


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[ScoredId]], weights: Sequence[float], k: int = 60
) -> list[ScoredId]:
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    fused: dict[str, float] = defaultdict(float)
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk_id] += weight / (k + rank)
    return sorted((ScoredId(cid, s) for cid, s in fused.items()), key=lambda h: -h.score)


def weighted_score_fusion(
    rankings: Sequence[Sequence[ScoredId]], weights: Sequence[float]
) -> list[ScoredId]:
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    fused: dict[str, float] = defaultdict(float)
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [hit.score for hit in ranking]
        low, high = min(scores), max(scores)
        span = high - low
        for hit in ranking:
            fused[hit.chunk_id] += weight * ((hit.score - low) / span if span > 0 else 1.0)
    return sorted((ScoredId(cid, s) for cid, s in fused.items()), key=lambda h: -h.score)

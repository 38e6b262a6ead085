"""Document-level retrieval metrics: a ranked list of chunks is first reduced to the documents
they come from, in order of first appearance; a document is relevant if it is a gold one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def dedupe(doc_ids: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    return [d for d in doc_ids if not (d in seen or seen.add(d))]  # type: ignore[func-returns-value]


def recall_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    return len(gold.intersection(ranked[:k])) / len(gold) if gold else 0.0


def mrr_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    return next((1.0 / rank for rank, d in enumerate(ranked[:k], start=1) if d in gold), 0.0)


def ndcg_at(ranked: Sequence[str], gold: set[str], k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, d in enumerate(ranked[:k], start=1) if d in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarise(
    rankings: Sequence[Sequence[str]], golds: Sequence[set[str]], latencies_ms: Sequence[float]
) -> dict[str, float]:
    n = len(rankings)
    pairs = list(zip(rankings, golds, strict=True))
    return {
        "recall@1": sum(recall_at(r, g, 1) for r, g in pairs) / n,
        "recall@5": sum(recall_at(r, g, 5) for r, g in pairs) / n,
        "recall@10": sum(recall_at(r, g, 10) for r, g in pairs) / n,
        "mrr@10": sum(mrr_at(r, g) for r, g in pairs) / n,
        "ndcg@10": sum(ndcg_at(r, g) for r, g in pairs) / n,
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
    }

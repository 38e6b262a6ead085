"""Cost per query of the zh bigram rerank, on a real index, in two passes.

    python bench/research/latency.py ../shared/eval/rgb_zh_int ../shared/eval/xquad_zh

For every question: the shipped search with top_k=5 (as served by default) and with top_k=20
(what a rerank depth of 20 fetches), then the rerank itself on those 20 chunks: normalise the
texts, count the query's character bigrams found, add lam * share to the fused score and sort.
Two passes over the questions; p50/p95 of each. Writes bench/results/research-latency.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO

from evaluation.runner import prepared_set
from rag_service.retrieval.bigrams import bigram_share, cjk_bigrams
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings

LAM, DEPTH = 1.0, 20


def bigram_rerank(query: str, texts: list[str], fused: list[float]) -> list[int]:
    grams = cjk_bigrams(query)
    if not grams:
        return list(range(len(texts)))
    scores = [f + LAM * bigram_share(grams, text) for text, f in zip(texts, fused, strict=True)]
    return sorted(range(len(texts)), key=lambda i: -scores[i])


def pct(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def exact_fill_ms(p: Any, hybrid: Any, bm25_index: Any, row_of: dict[str, int], q: str) -> float:
    """What the English recipe adds: the cosine of BM25-only candidates (their vectors fetched
    from Chroma, one dot product each) and the BM25 score of dense-only ones (read from the
    score array BM25 computes for every chunk anyway; here computed again, so an upper bound)."""
    bm25 = hybrid.bm25.retrieve(q, 50)
    dense = hybrid.dense.retrieve(q, 50)
    qvec = p.embedder.embed_query(q)  # cached: not part of the cost
    started = time.perf_counter()
    in_dense = {h.chunk_id for h in dense}
    missing = [h.chunk_id for h in bm25 if h.chunk_id not in in_dense]
    if missing:
        got = p.served.store._collection.get(ids=missing, include=["embeddings"])
        np.asarray(got["embeddings"], dtype=np.float32) @ qvec
    scores = bm25_index.scorer.scores(tokenize(q))
    in_bm25 = {h.chunk_id for h in bm25}
    [float(scores[row_of[h.chunk_id]]) for h in dense if h.chunk_id not in in_bm25]
    return (time.perf_counter() - started) * 1000


def measure(directory: Path, passes: int = 2) -> dict[str, Any]:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    out: dict[str, Any] = {}
    with prepared_set(directory, settings, cache) as p:
        questions = [q.question for q in p.eval_set.questions][:500]
        for n in range(passes):
            t5, t20, tr, tf = [], [], [], []
            hybrid, bm25_index = p.served.retriever, p.served.bm25
            row_of = {cid: n for n, cid in enumerate(bm25_index.ids)}
            for q in questions:
                started = time.perf_counter()
                p.service.search(q, 5)
                t5.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                result = p.service.search(q, DEPTH)
                t20.append((time.perf_counter() - started) * 1000)
                texts = [x.chunk.text for x in result.passages]
                fused = [x.fused_score for x in result.passages]
                started = time.perf_counter()
                bigram_rerank(q, texts, fused)
                tr.append((time.perf_counter() - started) * 1000)
                tf.append(exact_fill_ms(p, hybrid, bm25_index, row_of, q))
            out[f"pass{n + 1}"] = {
                "questions": len(questions),
                "search_top5_ms": pct(t5),
                "search_top20_ms": pct(t20),
                "bigram_rerank_20_ms": pct(tr),
                "exact_fill_ms": pct(tf),
            }
            print(directory.name, json.dumps(out[f"pass{n + 1}"]), file=sys.stderr)
    return out


if __name__ == "__main__":
    results = {Path(a).name: measure(Path(a)) for a in sys.argv[1:]}
    path = REPO / "bench" / "results" / "research-latency.json"
    path.write_text(json.dumps(results, indent=1) + "\n")

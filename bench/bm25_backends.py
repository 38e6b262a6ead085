"""bm25s against rank-bm25 on the same tokens: index build time, query latency, and whether the
rankings agree. Decides the default BM25 backend.

    python bench/bm25_backends.py [eval set dir, default ../shared/eval/scifact_train]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _common import EVAL_DIR, REPO

from evaluation.datasets import load_eval_set
from evaluation.metrics import percentile
from rag_service.retrieval.bm25 import Bm25Index
from rag_service.retrieval.tokenize import tokenize


def main(directory: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        eval_set = load_eval_set(directory, Path(tmp))
        docs = sorted(eval_set.documents.glob("*.md"))
        texts = [p.read_text(encoding="utf-8") for p in docs]
    started = time.perf_counter()
    tokens = [tokenize(t) for t in texts]
    tokenize_s = time.perf_counter() - started
    ids = [p.name for p in docs]
    queries = [tokenize(q.question) for q in eval_set.questions]
    result: dict[str, object] = {
        "dataset": eval_set.name,
        "documents": len(ids),
        "tokenize_s": tokenize_s,
    }
    rankings = {}
    for backend in ("bm25s", "rank-bm25"):
        started = time.perf_counter()
        index = Bm25Index.build(ids, ids, tokens, backend)
        build_s = time.perf_counter() - started
        latencies, ranked = [], []
        for q in queries:
            started = time.perf_counter()
            hits = index.search(q, 10)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked.append([h.chunk_id for h in hits])
        rankings[backend] = ranked
        result[backend] = {
            "build_s": build_s,
            "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95),
        }
    same_top1 = sum(
        a[:1] == b[:1] for a, b in zip(rankings["bm25s"], rankings["rank-bm25"], strict=True)
    )
    result["same_top1_fraction"] = same_top1 / len(queries)
    result["p50_ratio_rank_bm25_over_bm25s"] = (
        result["rank-bm25"]["p50_ms"] / result["bm25s"]["p50_ms"]  # type: ignore[index]
    )
    out = REPO / "bench" / "results" / f"bm25-backends-{eval_set.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else EVAL_DIR / "scifact_train")

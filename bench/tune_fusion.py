"""Choose the fusion defaults on the development sets, by language of the question.

    python bench/tune_fusion.py ../shared/eval/xquad_en ../shared/eval/scifact_train \
        ../shared/eval/xquad_zh ../shared/eval/cmrc2018_dev ../shared/eval/rgb_zh_int corpus

Each set is indexed once (embeddings from the shared cache, as `rag eval` does); the BM25 and
dense lists of every question are computed once and then fused under every candidate setting.
Prints nDCG@10 per set and setting, and writes bench/results/fusion-tuning.json.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path

from _common import REPO

from evaluation.metrics import dedupe, ndcg_at, recall_at
from evaluation.runner import prepared_set
from rag_service.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from rag_service.retrieval.language import query_language
from rag_service.settings import Settings

DEPTH = 50
DENSE_WEIGHTS = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0]
CONFIGS = [("rrf", k, w) for k, w in itertools.product([10, 30, 60], DENSE_WEIGHTS)] + [
    ("score", 0, w) for w in DENSE_WEIGHTS
]


def main(dirs: list[Path]) -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    # (set, language) -> config -> [ndcg, recall@5] sums, and question counts
    sums: dict[tuple[str, str], dict[tuple[str, int, float], list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0])
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for directory in dirs:
        with prepared_set(directory, settings, cache) as p:
            hybrid, source_of = p.served.retriever, p.source_of
            for q in p.eval_set.questions:
                bm25 = hybrid.bm25.retrieve(q.question, DEPTH)
                dense = hybrid.dense.retrieve(q.question, DEPTH)
                key = (p.eval_set.name, query_language(q.question))
                counts[key] += 1
                for config in CONFIGS:
                    method, k, w = config
                    fused = (
                        reciprocal_rank_fusion([bm25, dense], [1.0, w], k=k)
                        if method == "rrf"
                        else weighted_score_fusion([bm25, dense], [1.0, w])
                    )
                    ranked = dedupe(source_of[h.chunk_id] for h in fused)[:10]
                    acc = sums[key][config]
                    acc[0] += ndcg_at(ranked, q.gold)
                    acc[1] += recall_at(ranked, q.gold, 5)
        print(f"done {directory}", file=sys.stderr)

    results = {
        f"{name}/{lang}": {
            "questions": counts[(name, lang)],
            "configs": {
                f"{m}:k={k}:dense={w}": {
                    "ndcg@10": v[0] / counts[(name, lang)],
                    "recall@5": v[1] / counts[(name, lang)],
                }
                for (m, k, w), v in configs.items()
            },
        }
        for (name, lang), configs in sums.items()
    }
    out = REPO / "bench" / "results" / "fusion-tuning.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for lang in ("en", "zh"):
        groups = [g for g in results if g.endswith(f"/{lang}")]
        if not groups:
            continue
        print(f"\n{lang}: mean nDCG@10 over {', '.join(groups)}; per set")
        ranked = sorted(
            CONFIGS,
            key=lambda c: (
                -sum(
                    results[g]["configs"][f"{c[0]}:k={c[1]}:dense={c[2]}"]["ndcg@10"]
                    for g in groups
                )
            ),
        )
        for m, k, w in ranked[:8] + [c for c in CONFIGS if c[2] == 0.0][:1]:
            name = f"{m}:k={k}:dense={w}"
            per = [results[g]["configs"][name]["ndcg@10"] for g in groups]
            print(
                f"  {name:<22} mean {sum(per) / len(per):.4f}  "
                + "  ".join(f"{x:.4f}" for x in per)
            )


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])

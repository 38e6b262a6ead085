"""Choose the fusion for a query whose passages are in the other language (English questions over
Chinese documents and the reverse), leaving each cross-lingual set out in turn, and check that
the same-language sets keep their figures.

    RAG_EMBEDDER__BACKEND=e5 .venv/bin/python bench/tune_pairs.py ../shared/eval/xquad_en2zh \
        ../shared/eval/xquad_zh2en ../shared/eval/xquad_en ../shared/eval/xquad_zh \
        ../shared/eval/xquad_zh_hant ../shared/eval/xquad_hant2hans ../shared/eval/cmrc2018_dev \
        corpus

The lists come from `bench/tune_weights.py`'s dump (data/eval-cache/lists-*.json, written on
first use; the derived sets are built at load time, evaluation/datasets.py). Scoring mirrors
`rag eval`'s "ours": the passages' language is the majority language of the dense list's top
`n` chunks (`passage_language`); when it is the query's, the same-language weights of the
settings, as before; when not, BM25 at `bm25` and the dense list at 1.0, then for a Chinese
query the bigram boost as before. `n=0` is today's behaviour (the query's language alone).

Among the configurations that leave every same-language set within 0.001 nDCG@10, the one with
the best mean nDCG@10 over the cross-lingual sets is chosen (on a tie, the depth that fuses the
fewest same-language questions with the cross weights); left out in turn, each cross set is
scored with the configuration the other one chooses.
Writes bench/results/pair-tuning-<backend>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from _common import REPO
from tune_weights import dump

from evaluation.metrics import dedupe, ndcg_at, recall_at
from rag_service.retrieval.fusion import weighted_score_fusion
from rag_service.retrieval.hybrid import fusion_weights
from rag_service.retrieval.language import passage_language
from rag_service.settings import RetrievalSettings, Settings
from rag_service.types import ScoredId

DEPTH = 50
TOP_N = [0, 1, 3, 5]
BM25_CROSS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
Config = tuple[int, float]


def rank(record: dict[str, Any], top_n: int, r: RetrievalSettings) -> list[str]:
    chunks, language = record["chunks"], record["lang"]
    bm25 = [ScoredId(c, s) for c, s in record["bm25"]]
    dense = [ScoredId(c, s) for c, s in record["dense"]]
    passages = passage_language([chunks[c][1] for c, _ in record["dense"][:top_n]])
    fused = weighted_score_fusion([bm25, dense], fusion_weights(r, language, passages))
    if language == "zh" and r.bigram_weight_zh:
        bigram = r.bigram_weight_zh
        head = sorted(fused[:DEPTH], key=lambda h: -(h.score + bigram * chunks[h.chunk_id][2]))
        fused = head + fused[DEPTH:]
    return dedupe(chunks[h.chunk_id][0] for h in fused)[:10]


def list_only(record: dict[str, Any], which: str) -> list[str]:
    return dedupe(record["chunks"][c][0] for c, _ in record[which])[:10]


def score(records: list[dict[str, Any]], ranker: Any) -> tuple[float, float]:
    """nDCG@10 and hit@1 (Recall@1: every question here has one gold document)."""
    n, ndcg, hit1 = len(records), 0.0, 0.0
    for r in records:
        ranked, gold = ranker(r), set(r["gold"])
        ndcg += ndcg_at(ranked, gold)
        hit1 += recall_at(ranked, gold, 1)
    return ndcg / n, hit1 / n


def name(c: Config) -> str:
    return f"top_n={c[0]}:bm25_cross={c[1]}"


def main(dirs: list[Path]) -> None:
    settings = Settings()
    r = settings.retrieval
    backend, centering = settings.embedder.backend, f"{r.query_centering_en}-{r.query_centering_zh}"
    sets: dict[str, list[dict[str, Any]]] = {}
    cross: list[str] = []
    for directory in dirs:
        out = REPO / "data" / "eval-cache" / f"lists-{backend}-c{centering}-{directory.name}.json"
        if not out.exists():
            dump(directory, settings, out)
        data = json.loads(out.read_text())
        records = data["questions"]
        sets[data["set"]] = records
        # A set is cross-lingual when most of its questions' gold chunks are in the other
        # language (xquad_en2zh, xquad_zh2en).
        golden = [
            chunk[1] != rec["lang"]
            for rec in records
            for chunk in rec["chunks"].values()
            if chunk[0] in rec["gold"]
        ]
        if golden and sum(golden) > len(golden) / 2:
            cross.append(data["set"])
    configs = [(n, b) for n in TOP_N for b in (BM25_CROSS if n else [1.0])]
    weights = {
        c: r.model_copy(update={"bm25_weight_cross": c[1], "dense_weight_cross": 1.0})
        for c in configs
    }
    table = {
        s: {name(c): score(recs, lambda x, c=c: rank(x, c[0], weights[c])) for c in configs}
        for s, recs in sets.items()
    }
    base = {
        s: {w: score(recs, lambda x, w=w: list_only(x, w)) for w in ("bm25", "dense")}
        for s, recs in sets.items()
    }

    same = [s for s in sets if s not in cross]
    # Same-language questions a depth would fuse with the cross weights (a mixed collection's
    # top hit in the other language): on a tie in nDCG@10, the depth that moves fewer wins.
    moved = {
        n: sum(
            passage_language([rec["chunks"][c][1] for c, _ in rec["dense"][:n]])
            not in (None, rec["lang"])
            for s in same
            for rec in sets[s]
        )
        for n in TOP_N
    }

    def best(among: list[str]) -> str:
        """The best mean nDCG@10 over `among` (to 4 decimals, then the fewest same-language
        questions moved), among the configurations that change no same-language set by more
        than 0.001 nDCG@10."""
        today = name((0, 1.0))
        keeps = [
            c
            for c in configs
            if all(abs(table[s][name(c)][0] - table[s][today][0]) <= 0.001 for s in same)
        ]
        return name(
            max(
                keeps,
                key=lambda c: (
                    round(sum(table[s][name(c)][0] for s in among) / len(among), 4),
                    -moved[c[0]],
                ),
            )
        )

    chosen = best(cross)
    left_out = {s: best([o for o in cross if o != s] or cross) for s in cross}
    result: dict[str, Any] = {
        "backend": backend,
        "model": settings.embedder.model,
        "query_centering": [r.query_centering_en, r.query_centering_zh],
        "cross_sets": cross,
        "same_language_questions_moved": moved,
        "chosen": chosen,
        "sets": {
            s: {
                "before": table[s][name((0, 1.0))],
                "after": table[s][chosen],
                "bm25": base[s]["bm25"],
                "dense": base[s]["dense"],
                **(
                    {"left_out": {"chosen": left_out[s], "score": table[s][left_out[s]]}}
                    if s in cross
                    else {}
                ),
            }
            for s in sets
        },
        "table": table,
    }
    print(f"chosen {chosen}; cross-lingual sets: {', '.join(cross)}")
    print(f"same-language questions fused with the cross weights, by depth: {moved}")
    print(f"{'set':<18}{'before':>14}{'after':>14}{'dense':>14}{'bm25':>14}  left out")
    for s, v in result["sets"].items():
        cells = "".join(
            f"{v[k][0]:>8.3f}/{v[k][1]:.3f}" for k in ("before", "after", "dense", "bm25")
        )
        lo = v.get("left_out")
        held = f"{lo['chosen']} {lo['score'][0]:.3f}" if lo else ""
        print(f"{s:<18}{cells}  {held}")
    for c in sorted(configs, key=lambda c: -sum(table[s][name(c)][0] for s in cross))[:12]:
        print(f"  {name(c):<26}" + "".join(f"{table[s][name(c)][0]:>8.3f}" for s in sets))
    out = REPO / "bench" / "results" / f"pair-tuning-{backend}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])

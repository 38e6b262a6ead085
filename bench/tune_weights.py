"""Choose the per-language fusion weights, the Chinese bigram boost and what BM25 does across
languages, for the configured embedder, leaving each development set out in turn.

    RAG_EMBEDDER__BACKEND=e5 .venv/bin/python bench/tune_weights.py ../shared/eval/xquad_en \
        ../shared/eval/scifact_train ../shared/eval/xquad_zh ../shared/eval/cmrc2018_dev \
        ../shared/eval/rgb_zh_int ../shared/eval/xquad_zh2en corpus

Each set is indexed once (vectors from the shared cache, as `rag eval` does) and every
question's BM25 and dense lists (50 each), the sources, languages and bigram shares of their
chunks are kept in data/eval-cache/lists-<backend>-c<en>-<zh>-<set>.json (the dense list
depends on RAG_RETRIEVAL__QUERY_CENTERING_EN and _ZH); a rerun only re-scores. Scoring
mirrors `rag eval`'s "ours": min-max score fusion with BM25 at 1.0 and the dense list at
`dense`, then for a Chinese query the fused top 50 re-ordered by fused score + `bigram` x share.
`xl` is what BM25 does when a hit's chunk is not in the query's language: `keep` it, or `drop`
it (dense alone then speaks across languages).

For each language the configuration with the best mean nDCG@10 over its sets (each set counts
once) among those at or above BM25 alone and dense alone on every set (nDCG@10 and Recall@5) is
chosen; leave-one-set-out chooses again without each set and scores it on that set.
Writes bench/results/weights-tuning-<backend>.json.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import REPO

from evaluation.metrics import dedupe, ndcg_at, recall_at
from evaluation.runner import prepared_set
from rag_service.retrieval.bigrams import bigram_share, cjk_bigrams
from rag_service.retrieval.fusion import weighted_score_fusion
from rag_service.retrieval.language import query_language
from rag_service.settings import Settings
from rag_service.types import ScoredId

DEPTH = 50
DENSE = [0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
BIGRAM = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0]
XL = ["keep", "drop"]
Config = tuple[float, float, str]


def dump(directory: Path, settings: Settings, out: Path) -> None:
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    records = []
    with prepared_set(directory, settings, cache) as p:
        hybrid = p.served.retriever
        texts = {c.id: c.text for c in p.served.store.get(list(p.source_of))}
        lang_of = {cid: query_language(t) for cid, t in texts.items()}
        for q in p.eval_set.questions:
            bm25 = hybrid.bm25.retrieve(q.question, DEPTH)
            dense = hybrid.dense.retrieve(q.question, DEPTH)
            language = query_language(q.question)
            union = {h.chunk_id for h in bm25} | {h.chunk_id for h in dense}
            grams = cjk_bigrams(q.question) if language == "zh" else frozenset()
            records.append(
                {
                    "lang": language,
                    "gold": sorted(q.gold),
                    "bm25": [[h.chunk_id, h.score] for h in bm25],
                    "dense": [[h.chunk_id, h.score] for h in dense],
                    "chunks": {
                        cid: [p.source_of[cid], lang_of[cid], bigram_share(grams, texts[cid])]
                        for cid in union
                    },
                }
            )
    out.write_text(json.dumps({"set": p.eval_set.name, "questions": records}))


def rank(record: dict[str, Any], config: Config) -> list[str]:
    dense_w, bigram_w, xl = config
    chunks = record["chunks"]
    bm25 = [ScoredId(c, s) for c, s in record["bm25"]]
    if xl == "drop":
        bm25 = [h for h in bm25 if chunks[h.chunk_id][1] == record["lang"]]
    dense = [ScoredId(c, s) for c, s in record["dense"]]
    fused = weighted_score_fusion([bm25, dense], [1.0, dense_w])
    if record["lang"] == "zh" and bigram_w:
        head = sorted(fused[:DEPTH], key=lambda h: -(h.score + bigram_w * chunks[h.chunk_id][2]))
        fused = head + fused[DEPTH:]
    return dedupe(chunks[h.chunk_id][0] for h in fused)[:10]


def list_only(record: dict[str, Any], which: str) -> list[str]:
    return dedupe(record["chunks"][c][0] for c, _ in record[which])[:10]


def score(records: list[dict[str, Any]], ranker: Any) -> tuple[float, float]:
    n, ndcg, r5 = len(records), 0.0, 0.0
    for r in records:
        ranked, gold = ranker(r), set(r["gold"])
        ndcg += ndcg_at(ranked, gold)
        r5 += recall_at(ranked, gold, 5)
    return ndcg / n, r5 / n


def configs(language: str) -> list[Config]:
    bigrams = BIGRAM if language == "zh" else [0.0]
    return list(itertools.product(DENSE, bigrams, XL))


def name(c: Config) -> str:
    return f"dense={c[0]}:bigram={c[1]}:xl={c[2]}"


def main(dirs: list[Path]) -> None:
    settings = Settings()
    backend = settings.embedder.backend
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for directory in dirs:
        r = settings.retrieval
        centering = f"{r.query_centering_en}-{r.query_centering_zh}"
        out = REPO / "data" / "eval-cache" / f"lists-{backend}-c{centering}-{directory.name}.json"
        if not out.exists():
            dump(directory, settings, out)
            print(f"dumped {directory}", file=sys.stderr)
        data = json.loads(out.read_text())
        for language in ("en", "zh"):
            recs = [r for r in data["questions"] if r["lang"] == language]
            if len(recs) >= 20:
                groups[language][f"{data['set']}/{language}"] = recs
    result: dict[str, Any] = {
        "backend": backend,
        "model": settings.embedder.model,
        "query_centering": [r.query_centering_en, r.query_centering_zh],
    }
    for language, sets in groups.items():
        table = {
            s: {name(c): score(recs, lambda r, c=c: rank(r, c)) for c in configs(language)}
            for s, recs in sets.items()
        }
        base = {
            s: {w: score(recs, lambda r, w=w: list_only(r, w)) for w in ("bm25", "dense")}
            for s, recs in sets.items()
        }

        def best(
            among: list[str],
            table: dict[str, Any] = table,
            base: dict[str, Any] = base,
            language: str = language,
        ) -> str:
            """The best mean nDCG@10 among the configurations at or above both of its lists
            on every set (nDCG@10 and Recall@5), the acceptance bar; all if none is."""
            names = [name(c) for c in configs(language)]
            passing = [
                n
                for n in names
                if all(
                    table[s][n][m] >= base[s][w][m]
                    for s in among
                    for w in ("bm25", "dense")
                    for m in (0, 1)
                )
            ]
            return max(
                passing or names, key=lambda n: sum(table[s][n][0] for s in among) / len(among)
            )

        chosen = best(list(sets))
        loso = {}
        for held in sets:
            others = [s for s in sets if s != held]
            pick = best(others) if others else chosen
            loso[held] = {"chosen": pick, "ndcg@10": table[held][pick][0]}
        result[language] = {
            "chosen": chosen,
            "sets": {
                s: {
                    "ours": table[s][chosen],
                    "bm25": base[s]["bm25"],
                    "dense": base[s]["dense"],
                    "left_out": loso[s],
                }
                for s in sets
            },
            "table": table,
        }
        print(f"\n{language}: chosen {chosen}")
        for s in sets:
            o, b, d = table[s][chosen], base[s]["bm25"], base[s]["dense"]
            print(
                f"  {s:<22} ours {o[0]:.4f}/{o[1]:.4f}  bm25 {b[0]:.4f}/{b[1]:.4f}  "
                f"dense {d[0]:.4f}/{d[1]:.4f}  left out: {loso[s]['chosen']} "
                f"{loso[s]['ndcg@10']:.4f}"
            )
        top = sorted(
            configs(language),
            key=lambda c: -sum(table[s][name(c)][0] for s in sets) / len(sets),
        )[:10]
        for c in top:
            per = "  ".join(f"{table[s][name(c)][0]:.4f}" for s in sets)
            mean = sum(table[s][name(c)][0] for s in sets) / len(sets)
            print(f"    {name(c):<30} mean {mean:.4f}  {per}")
    out = REPO / "bench" / "results" / f"weights-tuning-{backend}-c{centering}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])

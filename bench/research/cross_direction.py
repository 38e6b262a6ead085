"""Which similarity tells an answerable question from an unanswerable one when the question and
the top passage are in different languages, in each direction? For each question of
xquad_zh2en and xquad_en2zh (with its gold document indexed, and without it), the top
passage's best sentence cosine with the question's vector uncentered and centered by its
language's mean query at several strengths; prints each signal's AUC and the lowest sum of the
two error rates that coverage + weight x signal reaches (in sample).

    .venv/bin/python bench/research/cross_direction.py xquad_zh2en xquad_en2zh --limit 400
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from asked import asked_both_ways
from calibrate_refusal import candidates, choose, rates

from rag_service.answering import coverage
from rag_service.retrieval.centering import QueryCentering, load_query_means
from rag_service.retrieval.language import query_language
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity

STRENGTHS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]


def auc(positive: list[float], negative: list[float]) -> float:
    p, n = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+")
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    results = {}
    for name in args.sets:
        rows: dict[str, list[list[tuple[float, float]]]] = {f"{s}": [[], []] for s in STRENGTHS}
        sentences, means = None, None
        for p, served, q, without in asked_both_ways(name, Settings(), args.limit, True):
            if sentences is None:
                sentences = SentenceSimilarity(p.embedder)
                means = load_query_means(p.embedder.model_id)
            language = query_language(q.question)
            raw = sentences.query_vector(q.question)
            tokens = tokenize(q.question)
            idf = served.idf(tokens)
            for side, filters in enumerate((None, without)):
                found = p.service.search_served(served, q.question, 5, filters)
                best = max((coverage(tokens, x.chunk.text, idf) for x in found.passages), default=0)
                top = found.passages[0].chunk.text if found.passages else ""
                for s in STRENGTHS:
                    query = QueryCentering(means, {language: s}).apply(raw, language)
                    cosines = sentences.scored(query, top)[1] if top else []
                    rows[f"{s}"][side].append((best, max(cosines, default=0.0)))
        report = {}
        for s, (gold, nogold) in rows.items():
            scored = {name: (gold, nogold)}
            (w, t), _ = choose(scored, candidates(scored))
            report[s] = {
                "auc_similarity": auc([x for _, x in gold], [x for _, x in nogold]),
                "best_pair": [w, t],
                "rates": rates((gold, nogold), w, t),
            }
            print(name, "centering", s, json.dumps(report[s]))
        results[name] = report
    out = Path(__file__).resolve().parent.parent / "results" / "research-cross-direction.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Does the dense similarity of the best *sentence* tell an answerable question from a near miss
better than that of the best passage? Offline features per question, with its gold documents
indexed and with them filtered out (as `rag eval-answers` does).

    .venv/bin/python bench/research/sentence_signals.py xquad_en xquad_zh cmrc2018_dev corpus

Writes data/eval-cache/sentence-signals-<identity>-<set>.json: per passage of the top 5, its
coverage, its dense cosine, and the cosines of its sentences with the (uncentered) query.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import EVAL_DIR, REPO

from evaluation.runner import prepared_set
from rag_service.answering import coverage
from rag_service.retrieval.results import SearchFilters
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.text import split_sentences


def features(prepared, served, question: str, filters) -> dict[str, object]:
    found = prepared.service.search_served(served, question, 5, filters)
    q = tokenize(question)
    idf = served.idf(q)
    query = prepared.embedder.embed_query(question)
    passages = []
    for p in found.passages:
        sentences = [s.text for s in split_sentences(p.chunk.text)] or [p.chunk.text]
        vectors = prepared.embedder.embed_documents(sentences)
        passages.append(
            {
                "coverage": coverage(q, set(tokenize(p.chunk.text)), idf),
                "dense": p.dense_score,
                "sentence_cos": [float(c) for c in np.asarray(vectors) @ np.asarray(query)],
                "sentence_coverage": [
                    coverage(q, set(tokenize(s)), idf) for s in sentences
                ],
            }
        )
    return {"language": found.language, "passages": passages}


def main() -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    identity = "-".join(settings.embedder.identity).replace("/", "_")
    for name in sys.argv[1:]:
        folder = REPO / "corpus" if name == "corpus" else EVAL_DIR / name
        rows = []
        with prepared_set(folder, settings, cache, 1000) as p:
            sources = frozenset(p.source_of.values())
            with p.service.current() as served:
                for q in p.eval_set.questions:
                    if not q.answers:
                        continue
                    rows.append(
                        {
                            "qid": q.qid,
                            "gold": features(p, served, q.question, None),
                            "without": features(
                                p, served, q.question, SearchFilters(sources=sources - q.gold)
                            ),
                        }
                    )
        out = REPO / "data" / "eval-cache" / f"sentence-signals-{identity}-{name}.json"
        out.write_text(json.dumps(rows))
        print(name, len(rows), file=sys.stderr)


if __name__ == "__main__":
    main()

"""Raw material for a learned refusal rule: each question with short answers, asked with its
gold documents and without them (and their related documents, as `rag eval-answers` does), with
what a cheap evidence score may read: the question's tokens and their idf, the top passages and
their scores, and the question's cosine with each sentence of the top three passages.

    .venv/bin/python bench/research/evidence_dump.py xquad_en xquad_zh cmrc2018_dev corpus

Writes /tmp/rag-research/evidence-<set>.pkl, read by evidence_fit.py.
"""

from __future__ import annotations

import pickle
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from asked import asked_both_ways

from rag_service.retrieval.language import query_language
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity

OUT = Path("/tmp/rag-research")


def asked(service, served, sentences, question: str, filters) -> dict[str, object]:
    found = service.search_served(served, question, 5, filters)
    q_tokens = tokenize(question)
    top = found.passages[0].chunk.text if found.passages else ""
    cross = bool(top) and query_language(top) != found.language
    query = (
        served.retriever.dense.query_vector(question) if cross else sentences.query_vector(question)
    )
    return {
        "language": found.language,
        "cross": cross,
        "q_tokens": q_tokens,
        "idf": served.idf(q_tokens),
        "passages": [
            {
                "text": p.chunk.text,
                "fused": p.fused_score,
                "bm25": p.bm25_score,
                "dense": p.dense_score,
                "bigram": p.bigram_share,
                "score": p.score,
                "scored": sentences.scored(query, p.chunk.text) if i < 3 else None,
            }
            for i, p in enumerate(found.passages)
        ],
    }


def main() -> None:
    settings = Settings()
    sentence_similarity = cache(SentenceSimilarity)  # one per set's embedder
    OUT.mkdir(exist_ok=True)
    for name in sys.argv[1:]:
        rows = [
            {
                "qid": q.qid,
                "question": q.question,
                "answers": q.answers,
                "gold": asked(p.service, served, sentence_similarity(p.embedder), q.question, None),
                "without": asked(
                    p.service, served, sentence_similarity(p.embedder), q.question, without
                ),
            }
            for p, served, q, without in asked_both_ways(name, settings, without_related=True)
        ]
        (OUT / f"evidence-{name}.pkl").write_bytes(pickle.dumps(rows))
        print(name, len(rows), file=sys.stderr)


if __name__ == "__main__":
    main()

"""Which evidence tells an answerable question from a near miss? Offline features per question,
with its gold documents indexed and with them filtered out (as `rag eval-answers` does).

    RAG_EMBEDDER__BACKEND=e5 .venv/bin/python bench/research/refusal_signals.py xquad_en xquad_zh

Writes data/eval-cache/refusal-signals-<backend>-<set>.json: coverage of the best passage, of
the best sentence and of the best two adjacent sentences, and the dense cosines of the top
passages.
"""

from __future__ import annotations

import json
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from _common import REPO
from asked import asked_both_ways

from rag_service.answering import coverage
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.text import split_sentences


def features(service, served, question: str, filters) -> dict[str, object]:
    found = service.search_served(served, question, 5, filters)
    q = tokenize(question)
    idf = served.idf(q)
    cov, sent, pair = 0.0, 0.0, 0.0
    for p in found.passages:
        cov = max(cov, coverage(q, p.chunk.text, idf))
        texts = [s.text for s in split_sentences(p.chunk.text)]
        for i, text in enumerate(texts):
            sent = max(sent, coverage(q, text, idf))
            if i + 1 < len(texts):
                pair = max(pair, coverage(q, text + "\n" + texts[i + 1], idf))
    dense = [p.dense_score for p in found.passages if p.dense_score is not None]
    return {"coverage": cov, "sentence": sent, "pair": pair, "dense": dense}


def main() -> None:
    settings = Settings()
    for name in sys.argv[1:]:
        rows = [
            {
                "gold": features(p.service, served, q.question, None),
                "without": features(p.service, served, q.question, without),
            }
            for p, served, q, without in asked_both_ways(name, settings)
        ]
        out = (
            REPO
            / "data"
            / "eval-cache"
            / f"refusal-signals-{settings.embedder.backend}-{name}.json"
        )
        out.write_text(json.dumps(rows))
        print(name, len(rows), file=sys.stderr)


if __name__ == "__main__":
    main()

"""Does the dense similarity of the best *sentence* tell an answerable question from a near miss
better than that of the best passage? Offline features per question, with its gold documents
indexed and with them filtered out (as `rag eval-answers` does).

    .venv/bin/python bench/research/sentence_signals.py xquad_en xquad_zh cmrc2018_dev corpus
    .venv/bin/python bench/research/sentence_signals.py --table xquad_en xquad_zh xquad_zh2en

Writes data/eval-cache/sentence-signals-<identity>-<set>.json: per passage of the top 5, its
coverage, its dense cosine, and the cosines of its sentences with the query, uncentered and
centered as the dense search centers it (`retrieval/centering.py`). `--table` reads those files
and prints, per set and signal, the lowest sum of the two error rates (answerable refused,
unanswerable answered) that coverage + w x signal reaches for any w and threshold (in sample).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REPO
from asked import asked_both_ways

from rag_service.answering import coverage
from rag_service.retrieval.centering import centering_for
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.text import split_sentences


def features(prepared, served, question: str, filters, centering) -> dict[str, object]:
    found = prepared.service.search_served(served, question, 5, filters)
    q = tokenize(question)
    idf = served.idf(q)
    query = prepared.embedder.embed_query(question)
    centered = centering.apply(query, found.language) if centering else query
    passages = []
    for p in found.passages:
        sentences = [s.text for s in split_sentences(p.chunk.text)] or [p.chunk.text]
        vectors = prepared.embedder.embed_documents(sentences)
        passages.append(
            {
                "coverage": coverage(q, p.chunk.text, idf),
                "dense": p.dense_score,
                "sentence_cos": [float(c) for c in np.asarray(vectors) @ np.asarray(query)],
                "sentence_cos_centered": [float(c) for c in np.asarray(vectors) @ centered],
                "sentence_coverage": [coverage(q, s, idf) for s in sentences],
            }
        )
    return {"language": found.language, "passages": passages}


SIGNALS = {
    "best passage cosine": lambda ps: max(p["dense"] or 0.0 for p in ps),
    "best sentence, top passage": lambda ps: max(ps[0]["sentence_cos"]),
    "best sentence, top 5": lambda ps: max(max(p["sentence_cos"]) for p in ps),
    "best sentence, top passage, centered": lambda ps: max(ps[0]["sentence_cos_centered"]),
}


def lowest_error(gold: np.ndarray, without: np.ndarray) -> float:
    """Columns: coverage, signal. The lowest refused + answered over weights and thresholds."""
    best = 2.0
    for w in np.arange(0.0, 15.0, 0.5):
        g, o = gold[:, 0] + w * gold[:, 1], without[:, 0] + w * without[:, 1]
        for t in np.quantile(np.concatenate([g, o]), np.linspace(0, 1, 300)):
            best = min(best, float((g < t).mean() + (o >= t).mean()))
    return best


def table(identity: str, names: list[str]) -> None:
    print("| set | " + " | ".join(SIGNALS) + " |")
    for name in names:
        path = REPO / "data" / "eval-cache" / f"sentence-signals-{identity}-{name}.json"
        rows = [r for r in json.loads(path.read_text()) if r["gold"]["passages"]]
        cells = []
        for signal in SIGNALS.values():
            pairs = [
                [
                    [max(p["coverage"] for p in c["passages"]), signal(c["passages"])]
                    for c in (r["gold"], r["without"])
                ]
                for r in rows
                if r["without"]["passages"]
            ]
            both = np.array(pairs)
            cells.append(f"{lowest_error(both[:, 0], both[:, 1]):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    settings = Settings()
    identity = "-".join(settings.embedder.identity).replace("/", "_")
    r = settings.retrieval
    centering = centering_for(
        settings.embedder.model, {"en": r.query_centering_en, "zh": r.query_centering_zh}
    )
    if sys.argv[1] == "--table":
        table(identity, sys.argv[2:])
        return
    for name in sys.argv[1:]:
        rows = [
            {
                "qid": q.qid,
                "gold": features(p, served, q.question, None, centering),
                "without": features(p, served, q.question, without, centering),
            }
            for p, served, q, without in asked_both_ways(name, settings)
        ]
        out = REPO / "data" / "eval-cache" / f"sentence-signals-{identity}-{name}.json"
        out.write_text(json.dumps(rows))
        print(name, len(rows), file=sys.stderr)


if __name__ == "__main__":
    main()

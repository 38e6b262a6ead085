"""Dump every question's BM25 and dense candidate lists, with what a reranker may read, once.

    python bench/research/dump.py ../shared/eval/xquad_en ../shared/eval/scifact_train \
        ../shared/eval/xquad_zh ../shared/eval/cmrc2018_dev ../shared/eval/rgb_zh_int corpus

Writes /tmp/rag-research/<set>.pkl: per question the question, language, gold sources, query
tokens with their idf, the BM25 and dense lists (depth 50, as served), and per candidate chunk
its source, title, headings, text, BM25 tokens and stored vector. The research scripts
(bench/research/*.py) then score fusions and rerankers offline from these files.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from common import REPO

from evaluation.runner import prepared_set
from rag_service.retrieval.bm25 import K1
from rag_service.retrieval.language import query_language
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings

DEPTH = 50
OUT = Path("/tmp/rag-research")


def dump(directory: Path) -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    with prepared_set(directory, settings, cache) as p:
        hybrid, bm25_index = p.served.retriever, p.served.bm25
        questions = []
        wanted: set[str] = set()
        row_of = {cid: n for n, cid in enumerate(bm25_index.ids)}
        for q in p.eval_set.questions:
            tokens = tokenize(q.question)
            bm25 = hybrid.bm25.retrieve(q.question, DEPTH)
            dense = hybrid.dense.retrieve(q.question, DEPTH)
            idf = {t: bm25_index.idf(t) for t in set(tokens)}
            all_scores = bm25_index.scorer.scores(tokens) if tokens else None
            union = {h.chunk_id for h in bm25} | {h.chunk_id for h in dense}
            bm25_all = {
                cid: float(all_scores[row_of[cid]]) if all_scores is not None else 0.0
                for cid in union
            }
            in_vocab = [t for t in tokens if bm25_index.scorer.document_frequency(t) > 0]
            questions.append(
                {
                    "qid": q.qid,
                    "question": q.question,
                    "lang": query_language(q.question),
                    "gold": sorted(q.gold),
                    "tokens": tokens,
                    "idf": idf,
                    "bm25_max": (K1 + 1) * sum(idf[t] for t in in_vocab),
                    "bm25": [(h.chunk_id, h.score) for h in bm25],
                    "dense": [(h.chunk_id, h.score) for h in dense],
                    "bm25_all": bm25_all,  # the BM25 score of every candidate of either list
                    "qvec": p.embedder.embed_query(q.question).astype(np.float32),
                }
            )
            wanted.update(h.chunk_id for h in bm25)
            wanted.update(h.chunk_id for h in dense)
        ids = sorted(wanted)
        chunks = {c.id: c for c in p.served.store.get(ids)}
        vectors = p.embedder.embed_documents([chunks[i].embedding_text for i in ids])
        info = {
            cid: {
                "source": chunks[cid].source,
                "title": chunks[cid].title,
                "headings": chunks[cid].headings,
                "text": chunks[cid].text,
                "tokens": tokenize(chunks[cid].embedding_text),
                "vec": vectors[n],
            }
            for n, cid in enumerate(ids)
        }
        data = {
            "name": p.eval_set.name,
            "n_chunks": p.chunks,
            "questions": questions,
            "chunks": info,
        }
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{data['name']}.pkl").open("wb") as fh:
        pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"done {directory}: {len(questions)} questions, {len(ids)} chunks", file=sys.stderr)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        dump(Path(arg))

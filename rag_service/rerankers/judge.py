"""The reader as a reranker: each candidate's probability that it answers the query, from the
instruct model that judges the evidence (``judging.py``: ``RAG_JUDGE__MODEL``, the window of the
passage around the sentence nearest the query, up to ``RAG_JUDGE__PASSAGE_TOKENS``).

On 2 CPU cores a judgement takes about 3 s, so it suits a few candidates
(``RAG_RETRIEVAL__RERANK_DEPTH`` 3 to 5) where seconds are acceptable, e.g. with local
generation, and above all questions in the other language than the documents, where the fused
order is weakest (docs/evaluation.md, *The judge as a reranker*)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rag_service.judging import bounded_passage
from rag_service.protocols import EvidenceJudge
from rag_service.retrieval.language import query_language
from rag_service.similarity import SentenceSimilarity
from rag_service.types import Chunk


class JudgeReranker:
    def __init__(
        self, judge: EvidenceJudge, sentences: SentenceSimilarity, passage_tokens: int
    ) -> None:
        self._judge = judge
        self._sentences = sentences
        self._passage_tokens = passage_tokens
        self._lock = threading.Lock()  # one worker: requests take turns

    @property
    def name(self) -> str:
        return f"judge:{self._judge.model}"

    def warm_up(self) -> None:
        self._judge.warm_up()

    def close(self) -> None:
        self._judge.close()

    def rerank(self, query: str, candidates: Sequence[Chunk]) -> list[float]:
        if not candidates:
            return []
        vector = self._sentences.query_vector(query)
        language = query_language(query)
        windows = [
            bounded_passage(*self._sentences.scored(vector, c.text), self._passage_tokens)
            for c in candidates
        ]
        with self._lock:
            return [self._judge.judge(query, language, w).probability for w in windows]

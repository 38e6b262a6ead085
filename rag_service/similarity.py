"""The question's cosine with each sentence of a passage, with the sentences' vectors kept.

The refusal rule weighs the best one (``answering.py``) and the extractive answerer quotes the
best ones (``llms/extractive.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from rag_service.protocols import Embedder, Vectors
from rag_service.text import split_sentences


class SentenceSimilarity:
    """The question's best cosine with a sentence of a passage. A passage that holds the answer
    usually has a sentence that says it; one on the same topic without it (the other paragraphs
    of the same article) is near the question only as a whole. Sentence vectors are kept (least
    recently used out): the same passages come back for related questions."""

    def __init__(self, embedder: Embedder, capacity: int = 4096) -> None:
        self._embedder = embedder
        self._capacity = capacity
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def _sentence_vectors(self, sentences: list[str]) -> Vectors:
        with self._lock:
            known = {s: self._vectors[s] for s in sentences if s in self._vectors}
            for s in known:
                self._vectors.move_to_end(s)
        missing = list(dict.fromkeys(s for s in sentences if s not in known))
        if missing:
            fresh = dict(zip(missing, self._embedder.embed_documents(missing), strict=True))
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
            known |= fresh
        return np.stack([known[s] for s in sentences])

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def cosines(self, query: Vectors, sentences: list[str]) -> Vectors:
        """``query``: the question's unit vector; one cosine per sentence."""
        result: Vectors = self._sentence_vectors(sentences) @ query
        return result

    def best(self, query: Vectors, passage: str) -> float | None:
        sentences = [s.text for s in split_sentences(passage)]
        if not sentences:
            return None
        return float(np.max(self.cosines(query, sentences)))

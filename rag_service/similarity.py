"""The question's cosine with each sentence of a passage, with the sentences' vectors kept.

The refusal rule weighs the best one (``answering.py``) and the extractive answerer quotes the
best ones (``llms/extractive.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from rag_service.protocols import Embedder, Vectors
from rag_service.text import split_sentences


class SentenceSimilarity:
    """The question's best cosine with a sentence of a passage. A passage that holds the answer
    usually has a sentence that says it; one on the same topic without it (the other paragraphs
    of the same article) is near the question only as a whole. Sentence vectors are kept (least
    recently used out): the same passages come back for related questions; so is the question's
    own, which the refusal rule and the extractive answerer both need."""

    def __init__(self, embedder: Embedder, capacity: int = 4096) -> None:
        self._embedder = embedder
        self._capacity = capacity
        self._vectors: OrderedDict[tuple[str, str], Vectors] = OrderedDict()  # (role, text)
        self._lock = threading.Lock()

    def _kept(self, role: str, texts: list[str], embed: Callable[[list[str]], Vectors]) -> Vectors:
        keys = [(role, t) for t in texts]
        with self._lock:
            known = {k: self._vectors[k] for k in keys if k in self._vectors}
            for k in known:
                self._vectors.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            vectors = embed([t for _, t in missing])
            fresh = dict(zip(missing, vectors, strict=True))
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
            known |= fresh
        return np.stack([known[k] for k in keys])

    def query_vector(self, question: str) -> Vectors:
        """The question's vector (uncentered), kept: the refusal rule and then the extractive
        answerer ask for it."""
        vector: Vectors = self._kept(
            "query", [question], lambda texts: np.stack([self._embedder.embed_query(texts[0])])
        )[0]
        return vector

    def cosines(self, query: Vectors, sentences: list[str]) -> Vectors:
        """``query``: the question's unit vector; one cosine per sentence."""
        result: Vectors = self._kept("document", sentences, self._embedder.embed_documents) @ query
        return result

    def best(self, query: Vectors, passage: str) -> float | None:
        _, cosines = self.scored(query, passage)
        return max(cosines) if cosines else None

    def scored(self, query: Vectors, passage: str) -> tuple[list[str], list[float]]:
        """The passage's sentences and the question's cosine with each."""
        sentences = [s.text for s in split_sentences(passage)]
        if not sentences:
            return [], []
        return sentences, [float(c) for c in self.cosines(query, sentences)]

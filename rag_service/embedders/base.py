"""What every embedder backend shares."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from rag_service.protocols import Vectors


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> Vectors:
    """Token vectors (batch, tokens, dim) averaged over the attention mask, then L2-normalised:
    the pooling of sentence-transformers' MiniLM and of E5."""
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    result: Vectors = (pooled / norms).astype(np.float32)
    return result


class FifoLock:
    """A lock granted in the order it was asked for. The document jobs of several collections
    share one embedder batch by batch; with a plain lock the thread that just released it
    usually takes it again at once, and one collection's large upload would keep another's
    small one waiting to its end."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turns.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._turns:
            self._serving += 1
            self._turns.notify_all()


class LazyEmbedder:
    """The model id the index fingerprint uses, a lock (model calls are not re-entrant across
    threads), and a model loaded by ``warm_up()`` or on first use, never at import."""

    def __init__(self, model_id: str, *, batch_size: int) -> None:
        self._model_id = model_id
        self._batch_size = batch_size
        self._lock = FifoLock()

    @property
    def model_id(self) -> str:
        return self._model_id

    def _load(self) -> Any:
        raise NotImplementedError

    @cached_property
    def _model(self) -> Any:
        return self._load()

    def warm_up(self) -> None:
        with self._lock:
            _ = self._model

    def close(self) -> None:
        """The model is plain memory: nothing to release."""

    def _by_length(
        self, texts: Sequence[str], size: int, encode: Callable[[list[str]], Vectors]
    ) -> Vectors:
        """`encode` over batches of `size` texts, under the model's lock. Sorted by length, a
        batch pads little; the caller's order is restored after."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            parts = [
                encode([texts[i] for i in order[start : start + size]])
                for start in range(0, len(order), size)
            ]
        out = np.concatenate(parts)
        restored: Vectors = np.empty_like(out)
        restored[order] = out
        return restored

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        raise NotImplementedError

    def embed_query(self, text: str) -> Vectors:
        """Symmetric models (MiniLM) embed a query as they embed a passage."""
        vector: Vectors = self.embed_documents([text])[0]
        return vector

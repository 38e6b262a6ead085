"""What every embedder backend shares."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from rag_service.protocols import Vectors


class LazyEmbedder:
    """The model id the index fingerprint uses, a lock (model calls are not re-entrant across
    threads), and a model loaded by ``warm_up()`` or on first use, never at import."""

    def __init__(self, model_id: str, *, batch_size: int) -> None:
        self._model_id = model_id
        self._batch_size = batch_size
        self._lock = threading.Lock()

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

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        raise NotImplementedError

    def embed_query(self, text: str) -> Vectors:
        """Symmetric models (MiniLM) embed a query as they embed a passage."""
        vector: Vectors = self.embed_documents([text])[0]
        return vector

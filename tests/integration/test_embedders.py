from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_service.embedders import build_embedder
from rag_service.embedders.cache import CachedEmbedder
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.settings import EmbedderSettings

pytestmark = pytest.mark.integration

TEXTS = [
    "Self-attention relates every token to every other token.",
    "BM25 weights rare query terms by inverse document frequency.",
    "向量数据库按余弦相似度检索最相近的片段。",
    "A mixture-of-experts layer routes each token to a few experts. " * 30,  # past 256 tokens
]


def test_vectors_are_unit_length_and_deterministic(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    vectors = real_embedder.embed_documents(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(real_embedder.embed_query(TEXTS[1]), vectors[1], atol=1e-5)


def test_onnx_int8_backend_agrees_with_torch(real_embedder: SentenceTransformerEmbedder) -> None:
    onnx = build_embedder(EmbedderSettings(backend="onnx-int8"))
    ours, reference = onnx.embed_documents(TEXTS), real_embedder.embed_documents(TEXTS)
    assert ours.shape == reference.shape
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 0.99, cosine
    # Order of the input is kept even though batches are sorted by length inside.
    query = onnx.embed_query("which layer picks experts for a token?")
    assert int(np.argmax(ours @ query)) == 3


def test_the_cache_keeps_queries_and_documents_apart(
    tmp_path: Path, real_embedder: SentenceTransformerEmbedder
) -> None:
    cache = CachedEmbedder(real_embedder, tmp_path / "cache.sqlite", "test|minilm")
    try:
        document = cache.embed_documents(["What is LoRA?"])[0]
        query = cache.embed_query("What is LoRA?")
        assert cache.misses == 2  # one vector per role: an E5 model would embed them differently
        assert cache.embed_query("What is LoRA?").tolist() == query.tolist()
        assert cache.embed_documents(["What is LoRA?"])[0].tolist() == document.tolist()
        assert cache.misses == 2
    finally:
        cache.close()

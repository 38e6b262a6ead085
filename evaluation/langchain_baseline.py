"""The widely copied LangChain recipe, as a baseline: EnsembleRetriever (0.5/0.5) over
BM25Retriever (whitespace tokens) and the Chroma retriever, on our chunks, vectors and embedder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rag_service.errors import ConfigError
from rag_service.protocols import Embedder
from rag_service.types import Chunk


def _require_langchain(exc: ImportError) -> ConfigError:
    return ConfigError(
        f"the LangChain baseline needs the bench extra: pip install -e '.[bench]' ({exc})"
    )


def langchain_embeddings(embedder: Embedder) -> Any:
    """Our embedder behind LangChain's `Embeddings` interface, so both sides embed alike."""
    try:
        from langchain_core.embeddings import Embeddings
    except ImportError as exc:
        raise _require_langchain(exc) from exc

    class SameEmbedder(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_documents(texts).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_query(text).tolist()  # type: ignore[no-any-return]

    return SameEmbedder()


def build_langchain_ensemble(
    chunks: Sequence[Chunk], chroma_client: Any, collection_name: str, embedder: Embedder, k: int
) -> Callable[[str], list[str]]:
    try:
        from langchain_chroma import Chroma
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_core.documents import Document
    except ImportError as exc:
        raise _require_langchain(exc) from exc

    # Both retrievers return the same chunk texts, as in the recipe, so the ensemble merges them.
    documents = [Document(page_content=c.text, metadata={"source": c.source}) for c in chunks]
    bm25 = BM25Retriever.from_documents(documents, k=k)
    dense = Chroma(
        client=chroma_client,
        collection_name=collection_name,
        embedding_function=langchain_embeddings(embedder),
    ).as_retriever(search_kwargs={"k": k})
    ensemble = EnsembleRetriever(retrievers=[bm25, dense], weights=[0.5, 0.5])
    return lambda query: [doc.metadata["source"] for doc in ensemble.invoke(query)]

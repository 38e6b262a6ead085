"""The LangChain recipe behind HTTP, for the search benchmark: EnsembleRetriever (0.5/0.5) over
BM25Retriever and the Chroma retriever, on the chunks and vectors of one of our indexes, with
the same embedder embedding each query live.

    python bench/langchain_server.py DATA_DIR PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from evaluation.langchain_baseline import build_langchain_ensemble
from rag_service.embedders import build_embedder
from rag_service.index_state import IndexState
from rag_service.settings import Settings
from rag_service.stores import open_store
from rag_service.stores.chroma import persistent_client


class Query(BaseModel):
    query: str
    top_k: int = 5


def create_app(data_dir: Path) -> FastAPI:
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    state = IndexState(data_dir)
    pointer = state.current()
    assert pointer is not None
    ids = [cid for entry in state.manifest(pointer).values() for cid in entry.chunk_ids]
    store = open_store(settings, pointer.collection)
    chunks = store.get(ids)
    embedder = build_embedder(settings.embedder)
    search = build_langchain_ensemble(
        chunks, persistent_client(data_dir / "chroma"), pointer.collection, embedder, k=5
    )
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/search")
    def run(body: Query) -> dict[str, list[str]]:
        return {"sources": search(body.query)[: body.top_k]}

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]))

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rag_service.api.deps import SearchDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up. Says nothing about the index: see /v1/index."""
    return {"status": "ok"}


@router.get("/v1/index")
def index_status(search: SearchDep) -> dict[str, Any]:
    """The index being served: 503 problem if there is none yet."""
    with search.current() as served:
        pointer = served.pointer
    return {
        "collection": pointer.collection,
        "generation": pointer.generation,
        "sources": pointer.sources,
        "chunks": pointer.chunks,
        "committed_at": pointer.committed_at,
    }

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from rag_service.api.auth import QUERY
from rag_service.api.deps import LibraryDep
from rag_service.api.schemas import (
    WHOLE,
    CollectionField,
    Filters,
    Passage,
    QueryText,
    round_ms,
)
from rag_service.collections import DEFAULT

router = APIRouter(tags=["retrieval"], dependencies=[QUERY])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    query: QueryText
    top_k: Annotated[int, Field(ge=1, le=100), WHOLE] = 5
    filters: Filters | None = None
    collection: CollectionField = DEFAULT


class SearchResponse(BaseModel):
    query: str
    language: str
    passages: list[Passage]
    generation: int
    timings_ms: dict[str, float]


@router.post("/v1/search")
def search(body: SearchRequest, library: LibraryDep) -> SearchResponse:
    filters = body.filters.to_search() if body.filters else None
    result = library.search(body.collection).search(body.query, body.top_k, filters)
    return SearchResponse(
        query=body.query,
        language=result.language,
        passages=[Passage.of(hit) for hit in result.passages],
        generation=result.pointer.generation,
        timings_ms=round_ms(result.timings.as_dict()),
    )

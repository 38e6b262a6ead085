from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag_service.api.deps import SearchDep
from rag_service.search import SearchHit
from rag_service.types import NO_PAGE

router = APIRouter(tags=["retrieval"])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(5, ge=1, le=100)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank")
        return value


class StageDetail(BaseModel):
    dense_rank: int
    dense_score: float


class Passage(BaseModel):
    chunk_id: str
    text: str
    source: str
    title: str
    headings: list[str]
    start: int
    end: int
    page: int | None
    score: float
    detail: StageDetail

    @classmethod
    def of(cls, hit: SearchHit) -> Passage:
        c = hit.chunk
        return cls(
            chunk_id=c.id,
            text=c.text,
            source=c.source,
            title=c.title,
            headings=list(c.headings),
            start=c.start,
            end=c.end,
            page=None if c.page == NO_PAGE else c.page,
            score=hit.score,
            detail=StageDetail(dense_rank=hit.dense_rank, dense_score=hit.dense_score),
        )


class SearchResponse(BaseModel):
    query: str
    passages: list[Passage]
    generation: int
    timings_ms: dict[str, float]


@router.post("/v1/search")
def search(body: SearchRequest, service: SearchDep) -> SearchResponse:
    result = service.search(body.query, body.top_k)
    return SearchResponse(
        query=body.query,
        passages=[Passage.of(hit) for hit in result.hits],
        generation=result.pointer.generation,
        timings_ms={k: round(v, 2) for k, v in result.timings_ms.items()},
    )

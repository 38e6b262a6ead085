from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag_service.api.deps import SearchDep
from rag_service.retrieval.hybrid import RetrievedPassage, SearchFilters
from rag_service.types import NO_PAGE

router = APIRouter(tags=["retrieval"])


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[str] | None = Field(None, description="Only these source paths.")
    source_prefix: str | None = Field(None, description="Only sources under this path prefix.")

    def to_search(self) -> SearchFilters:
        return SearchFilters(
            frozenset(self.sources) if self.sources is not None else None, self.source_prefix
        )


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(5, ge=1, le=100)
    filters: Filters | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank")
        return value


class StageDetail(BaseModel):
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    fused_score: float
    rerank_score: float | None


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
    def of(cls, hit: RetrievedPassage) -> Passage:
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
            detail=StageDetail(
                bm25_rank=hit.bm25_rank,
                bm25_score=hit.bm25_score,
                dense_rank=hit.dense_rank,
                dense_score=hit.dense_score,
                fused_score=hit.fused_score,
                rerank_score=hit.rerank_score,
            ),
        )


class SearchResponse(BaseModel):
    query: str
    language: str
    passages: list[Passage]
    generation: int
    timings_ms: dict[str, float]


@router.post("/v1/search")
def search(body: SearchRequest, service: SearchDep) -> SearchResponse:
    filters = body.filters.to_search() if body.filters else None
    result = service.search(body.query, body.top_k, filters)
    return SearchResponse(
        query=body.query,
        language=result.language,
        passages=[Passage.of(hit) for hit in result.passages],
        generation=result.pointer.generation,
        timings_ms={k: round(v, 2) for k, v in result.timings_ms.items()},
    )

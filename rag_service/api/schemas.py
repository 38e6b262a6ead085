"""Request and response parts shared by several routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from rag_service.retrieval.hybrid import RetrievedPassage, SearchFilters
from rag_service.types import NO_PAGE


def _not_blank(value: str, info: ValidationInfo) -> str:
    if not value.strip():
        raise ValueError(f"{info.field_name} is blank")
    return value


def _whole_number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Request models are strict (`"5"` and `true` are no integers, `0` is no boolean), but JSON
# Schema counts 5.0 as an integer, and so does the OpenAPI document: accept it as 5. Put after
# the bounds, `Annotated[int, Field(ge=..., le=...), WHOLE]`, or pydantic documents no bounds.
WHOLE = BeforeValidator(_whole_number)

# A query or question: some text that is not only whitespace.
QueryText = Annotated[
    str, Field(min_length=1, max_length=4000, pattern=r"\S"), AfterValidator(_not_blank)
]


# Bounds on filters: an unbounded list once cost ~440 MB of memory per request.
MAX_SOURCES = 1000
MAX_PATH_CHARS = 1024
SourcePath = Annotated[str, Field(max_length=MAX_PATH_CHARS)]


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sources: list[SourcePath] | None = Field(
        None, max_length=MAX_SOURCES, description="Only these source paths."
    )
    source_prefix: SourcePath | None = Field(
        None, description="Only sources under this path prefix."
    )

    def to_search(self) -> SearchFilters:
        return SearchFilters(
            frozenset(self.sources) if self.sources is not None else None, self.source_prefix
        )


class StageDetail(BaseModel):
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    fused_score: float
    bigram_share: float | None
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
                bigram_share=hit.bigram_share,
                rerank_score=hit.rerank_score,
            ),
        )

"""Request and response parts shared by several routes (and the CLI's ``--json``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from rag_service.answering import Answer
from rag_service.collections import NAME_RULE, check_name
from rag_service.errors import BadRequest
from rag_service.retrieval.results import RetrievedPassage, SearchFilters
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


def _collection_name(value: str) -> str:
    try:
        return check_name(value)
    except BadRequest as exc:
        raise ValueError(str(exc)) from None


# A collection's name, in NFC (the form it is stored in), or a 422 that says why not. The length
# bound here only caps the work: a decomposed (NFD) name may be longer than its NFC form. No
# JSON Schema pattern says "no control or format character" in every script, so the document
# names the rule as a format of its own.
COLLECTION_NAME = AfterValidator(_collection_name)
NAME_DESCRIPTION = f"A collection: {NAME_RULE}."
NAME_FORMAT: dict[str, Any] = {"format": "collection-name"}
# Which collection a request reads; `default` when none is named, so older calls keep working.
CollectionField = Annotated[
    str,
    Field(max_length=256, description=NAME_DESCRIPTION, json_schema_extra=NAME_FORMAT),
    COLLECTION_NAME,
]
CollectionQuery = Annotated[
    str,
    Query(max_length=256, description=NAME_DESCRIPTION, json_schema_extra=NAME_FORMAT),
    COLLECTION_NAME,
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


def round_ms(timings: dict[str, float]) -> dict[str, float]:
    return {stage: round(ms, 2) for stage, ms in timings.items()}


class CitationOut(BaseModel):
    n: int
    chunk_id: str
    source: str
    title: str
    quote: str
    start: int
    end: int


class MarkOut(BaseModel):
    """A kept ``[n]`` in the answer: its offsets, and its citation's index in ``citations``."""

    start: int
    end: int
    citation: int


class Generator(BaseModel):
    backend: str
    model: str
    fallback_reason: str | None = Field(
        None, description="Set when the extractive answerer stood in for a failed LLM."
    )


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class MessageOut(BaseModel):
    role: str
    content: str


class AskResponse(BaseModel):
    question: str
    # What was searched and judged: the question itself, or a follow-up made standalone from the
    # history (conversation.py).
    standalone_question: str
    language: str
    answer: str
    answerable: bool
    refusal_reason: str | None
    coverage: float
    # The question's best cosine with a sentence of the top passage; null when the refusal rule
    # does not weigh it (an embedder without calibrated weights).
    similarity: float | None
    evidence_rule: str  # "en", "zh", "cross" or "cross_en" (top passage in the other language)
    # Who decided whether the documents answer: "rule", "judge" (the reader model, near the
    # rule's threshold and across languages), or "rule_judge_failed" (asked, failed: the rule).
    decided_by: str
    judge_probability: float | None  # the judge's P(the top passage answers); null: not asked
    citations: list[CitationOut]
    marks: list[MarkOut]
    dropped_citations: int
    passages: list[Passage]
    generator: Generator
    usage: UsageOut | None
    generation: int
    timings_ms: dict[str, float]
    prompt: list[MessageOut] | None = None

    @classmethod
    def of(cls, answer: Answer, include_prompt: bool) -> AskResponse:
        return cls(
            question=answer.question,
            standalone_question=answer.standalone_question,
            language=answer.language,
            answer=answer.answer,
            answerable=answer.answerable,
            refusal_reason=answer.refusal_reason,
            coverage=round(answer.coverage, 4),
            similarity=None if answer.similarity is None else round(answer.similarity, 4),
            evidence_rule=answer.rule,
            decided_by=answer.decided_by,
            judge_probability=round(answer.judgement.probability, 4) if answer.judgement else None,
            citations=[CitationOut(**vars(c)) for c in answer.citations],
            marks=[MarkOut(**vars(m)) for m in answer.marks],
            dropped_citations=answer.dropped_citations,
            passages=[Passage.of(p) for p in answer.passages],
            generator=Generator(
                backend=answer.backend, model=answer.model, fallback_reason=answer.fallback_reason
            ),
            usage=UsageOut(**vars(answer.usage)) if answer.usage else None,
            generation=answer.generation,
            timings_ms=round_ms(answer.timings.as_dict()),
            prompt=[MessageOut(role=m.role, content=m.content) for m in answer.prompt.messages]
            if include_prompt and answer.prompt
            else None,
        )

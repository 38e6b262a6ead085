"""``POST /v1/ask``: an answer with verified citations, whole or as Server-Sent Events.

Stream events, in order: ``passages`` (what was retrieved), ``delta`` (each new piece of the
answer, never the text so far), ``citations`` (the verified ones), ``done`` (the final answer,
with unverifiable markers removed, and everything else of the plain response but the passages).
A failure after the stream has begun arrives as one ``error`` event with a problem body.
"""

from __future__ import annotations

import json
import logging
from collections import abc
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag_service.answering import Answer, AnswerService, Delta, Question
from rag_service.api.auth import QUERY
from rag_service.api.deps import AnswerDep, AnswerSlot, LibraryDep, MetricsDep, SettingsDep
from rag_service.api.errors import kind_of, problem_body
from rag_service.api.metrics import ApiMetrics
from rag_service.api.schemas import (
    WHOLE,
    AskResponse,
    CollectionField,
    Filters,
    Passage,
    QueryText,
)
from rag_service.api.streaming import ClosingStreamingResponse
from rag_service.collections import DEFAULT
from rag_service.errors import RagError
from rag_service.settings import LLMSettings
from rag_service.types import GenerationParams, Message

log = logging.getLogger(__name__)

router = APIRouter(tags=["answering"], dependencies=[QUERY])


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=8000)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    question: QueryText
    top_k: Annotated[int, Field(ge=1, le=20), WHOLE] | None = Field(
        None, description="Passages given to the LLM."
    )
    filters: Filters | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: Annotated[int, Field(ge=1, le=8192), WHOLE] | None = None
    history: list[Turn] = Field(
        default_factory=list,
        max_length=20,
        description="Earlier turns, oldest first: a follow-up that refers to them is searched as "
        "a standalone question (returned as standalone_question).",
    )
    include_prompt: bool = Field(False, description="Return the messages sent to the LLM.")
    collection: CollectionField = DEFAULT

    def to_question(self, defaults: LLMSettings) -> Question:
        params = GenerationParams(
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            top_p=self.top_p or defaults.top_p,
            max_tokens=self.max_tokens or defaults.max_tokens,
        )
        return Question(
            text=self.question,
            params=params,
            top_k=self.top_k,
            filters=self.filters.to_search() if self.filters else None,
            history=tuple(Message(t.role, t.content) for t in self.history),
        )


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _stream(
    request: Request,
    service: AnswerService,
    metrics: ApiMetrics,
    body: AskRequest,
    question: Question,
) -> StreamingResponse:
    # Retrieval runs now, so a missing index is a plain 503, not an error inside a stream.
    evidence, events = service.ask_stream(question)

    def sse() -> abc.Generator[bytes]:
        yield _event(
            "passages",
            {
                "language": evidence.language,
                "standalone_question": evidence.standalone_question,
                "coverage": round(evidence.coverage, 4),
                "passages": [Passage.of(p).model_dump() for p in evidence.passages],
            },
        )
        try:
            for event in events:
                if isinstance(event, Delta):
                    yield _event("delta", {"text": event.text})
                elif isinstance(event, Answer):
                    metrics.observe_answer(event)
                    done = AskResponse.of(event, body.include_prompt)
                    yield _event(
                        "citations",
                        {
                            "citations": [c.model_dump() for c in done.citations],
                            "dropped_citations": done.dropped_citations,
                        },
                    )
                    yield _event("done", done.model_dump(exclude={"passages"}))
        except RagError as exc:
            log.warning("stream failed: %s", exc)
            kind = kind_of(exc)
            yield _event("error", problem_body(request, kind.status, str(exc), kind.type))
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # the generation, and the LLM stream under it, stop now
                close()

    return ClosingStreamingResponse(
        sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# One Server-Sent Event, as the stream's schema is read (each event on its own).
_SSE_EVENT = {
    "type": "object",
    "description": "With `stream: true`, in order: `passages`, `delta`..., `citations`, `done` "
    "(or one `error`, its data a problem body); each `data` is a JSON object.",
    "properties": {
        "event": {"type": "string", "enum": ["passages", "delta", "citations", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}


@router.post(
    "/v1/ask",
    response_model=None,
    responses={
        200: {
            "description": "The answer; as Server-Sent Events when `stream` is true.",
            "model": AskResponse,
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        }
    },
)
def ask(
    request: Request,
    body: AskRequest,
    service: AnswerDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    library: LibraryDep,
    _: AnswerSlot,
) -> AskResponse | StreamingResponse:
    service = service.over(library.search(body.collection))
    question = body.to_question(settings.llm)
    if body.stream:
        return _stream(request, service, metrics, body, question)
    answer = service.ask(question)
    metrics.observe_answer(answer)
    return AskResponse.of(answer, body.include_prompt)

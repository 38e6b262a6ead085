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

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from rag_service.api.deps import AnswerDep, AnswerSlot, MetricsDep
from rag_service.api.errors import problem_body, status_of
from rag_service.api.metrics import ApiMetrics
from rag_service.api.schemas import WHOLE, Filters, Passage, QueryText
from rag_service.errors import RagError
from rag_service.pipeline import Answer, AnswerService, Delta, Question
from rag_service.settings import LLMSettings
from rag_service.types import GenerationParams, Message

log = logging.getLogger(__name__)

router = APIRouter(tags=["answering"])


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
    history: list[Turn] = Field(default_factory=list, max_length=20)
    include_prompt: bool = Field(False, description="Return the messages sent to the LLM.")

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


class CitationOut(BaseModel):
    n: int
    chunk_id: str
    source: str
    title: str
    quote: str
    start: int
    end: int


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
    language: str
    answer: str
    answerable: bool
    refusal_reason: str | None
    coverage: float
    citations: list[CitationOut]
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
            language=answer.language,
            answer=answer.answer,
            answerable=answer.answerable,
            refusal_reason=answer.refusal_reason,
            coverage=round(answer.coverage, 4),
            citations=[CitationOut(**vars(c)) for c in answer.citations],
            dropped_citations=answer.dropped_citations,
            passages=[Passage.of(p) for p in answer.passages],
            generator=Generator(
                backend=answer.backend, model=answer.model, fallback_reason=answer.fallback_reason
            ),
            usage=UsageOut(**vars(answer.usage)) if answer.usage else None,
            generation=answer.generation,
            timings_ms={k: round(v, 2) for k, v in answer.timings_ms.items()},
            prompt=[MessageOut(role=m.role, content=m.content) for m in answer.prompt.messages]
            if include_prompt and answer.prompt
            else None,
        )


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose generator is closed however the response ends, a client hanging up
    included. Starlette leaves an abandoned generator to the garbage collector, and until it
    runs, the LLM behind it goes on generating for nobody (issue #12, finding 8)."""

    def __init__(self, content: abc.Generator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._generator = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a cancelled request must still stop its generation. In a thread: closing
            # runs the generator's cleanup, which closes an HTTP stream or signals a worker.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._generator.close)


def _stream(
    request: Request,
    service: AnswerService,
    metrics: ApiMetrics,
    body: AskRequest,
    question: Question,
) -> StreamingResponse:
    # Retrieval runs now, so a missing index is a plain 503, not an error inside a stream.
    retrieved, events = service.ask_stream(question)

    def sse() -> abc.Generator[bytes]:
        found = AskResponse.of(retrieved, include_prompt=False)
        yield _event(
            "passages",
            {
                "language": found.language,
                "coverage": found.coverage,
                "passages": [p.model_dump() for p in found.passages],
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
            yield _event("error", problem_body(request, status_of(exc), str(exc)))
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
    request: Request, body: AskRequest, service: AnswerDep, metrics: MetricsDep, _: AnswerSlot
) -> AskResponse | StreamingResponse:
    question = body.to_question(request.app.state.settings.llm)
    if body.stream:
        return _stream(request, service, metrics, body, question)
    answer = service.ask(question)
    metrics.observe_answer(answer)
    return AskResponse.of(answer, body.include_prompt)

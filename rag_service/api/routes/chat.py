"""OpenAI's chat-completions protocol on the answer pipeline: ``GET /v1/models`` and
``POST /v1/chat/completions``, so chat clients (Open WebUI, LibreChat, LangChain's ChatOpenAI, the
``openai`` package) ask the documents and render the citations.

The last user message is the question, earlier user and assistant turns the history (the most
recent 20); a client's system message is ignored, since the service's own prompt decides how
documents are used. ``top_k`` and ``filters`` are accepted beside OpenAI's fields; unknown
fields are ignored. The answer is /v1/ask's: the same refusal, the same verified ``[n]`` markers.

Citations travel three ways, for the clients that read each:

- ``annotations`` on the message (OpenAI's ``url_citation``), one per ``[n]`` with its offsets in
  the content and a link to the document view that highlights the quote;
- a top-level ``sources`` list (non-streamed responses, and the last chunk of a stream), beside
  ``standalone_question``: what was searched, the last message made standalone from the earlier
  ones (conversation.py);
- in a stream, Open WebUI's ``{"event": {"type": "source", ...}}`` chunks, one per passage up to
  the highest cited number, so that its ``[n]`` lines up with its n-th source.

A chat client's background task (Open WebUI's title, tags, follow-up suggestions ...) is
recognised by its prompt and answered from the conversation without a search (chat_tasks.py),
marked ``chat_task`` and counted in ``rag_chat_tasks_total``.

Errors on these routes are OpenAI's ``{"error": {"message", "type", "code"}}`` (also inside a
stream), not problem+json, since that is what these clients parse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections import abc
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_service.answering import UNVERIFIED, Answer, Delta, Question
from rag_service.api.auth import QUERY
from rag_service.api.deps import AnswerDep, AnswerSlot, LibraryDep, MetricsDep, SettingsDep
from rag_service.api.errors import kind_of
from rag_service.api.routes.ask import AskRequest, Turn
from rag_service.api.routes.documents import citation_url
from rag_service.api.schemas import CitationOut, Filters
from rag_service.api.streaming import ClosingStreamingResponse
from rag_service.chat_tasks import ChatTask, recognise, reply
from rag_service.collections import DEFAULT, check_name
from rag_service.errors import BadRequest, NotFound, RagError
from rag_service.settings import Settings
from rag_service.types import Chunk, Citation, Message

log = logging.getLogger(__name__)

# Between a streamed LLM answer whose citations all failed the check and what replaces it.
SEPARATOR = "\n\n---\n"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    429: "rate_limit_error",
}
_ERROR_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}


def openai_error(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code or _ERROR_CODES.get(status),
        }
    }


def _validation_message(errors: Any) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


class OpenAIErrorRoute(APIRoute):
    """Turns what would be a problem+json response into OpenAI's error shape, for these routes
    only (authentication and validation included: they fail inside the route's handler)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse(openai_error(400, _validation_message(exc.errors())), 400)
            except RagError as exc:
                status = kind_of(exc).status
                return JSONResponse(openai_error(status, str(exc)), status, headers=exc.headers)
            except StarletteHTTPException as exc:
                return JSONResponse(openai_error(exc.status_code, str(exc.detail)), exc.status_code)

        return route


router = APIRouter(tags=["chat"], dependencies=[QUERY], route_class=OpenAIErrorRoute)


class TextPart(BaseModel):
    type: str
    text: str | None = None  # parts of other types (images) carry none: not read


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields this service has no use for

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None  # OpenAI's newer name for max_tokens
    top_k: int | None = None
    filters: Filters | None = None

    def task(self) -> ChatTask | None:
        """The client's background task (a title, tags ...) this request is, if it is one."""
        return recognise([Message(m.role, m.text) for m in self.messages])

    def to_ask(self) -> AskRequest:
        """/v1/ask's request, so that its bounds and defaults apply here as well."""
        turns = [m for m in self.messages if m.role in ("user", "assistant") and m.text.strip()]
        if not turns or turns[-1].role != "user":
            raise BadRequest("the last message must be the user's question")
        try:
            return AskRequest(
                question=turns[-1].text,
                history=[
                    Turn.model_validate({"role": m.role, "content": m.text})
                    for m in turns[:-1][-20:]
                ],
                top_k=self.top_k,
                filters=self.filters,
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_completion_tokens or self.max_tokens,
            )
        except ValidationError as exc:
            raise BadRequest(_validation_message(exc.errors())) from None


class SourceOut(CitationOut):
    url: str  # the document view with the quote highlighted


class Frame:
    """What every response and chunk of one completion shares, and its citation links."""

    def __init__(self, request: Request, model: str, collection: str) -> None:
        self.request = request
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.collection = collection

    def url(self, source: str, start: int, end: int) -> str:
        return citation_url(self.request, source, start, end, self.collection)

    def sources(self, answer: Answer) -> list[SourceOut]:
        return [
            SourceOut(**vars(c), url=self.url(c.source, c.start, c.end)) for c in answer.citations
        ]

    def annotations(
        self, answer: Answer, sources: list[SourceOut], shift: int = 0
    ) -> list[dict[str, Any]]:
        """``shift``: where the answer's text starts in the message's content."""
        return [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": sources[m.citation].url,
                    "title": sources[m.citation].title,
                    "start_index": m.start + shift,
                    "end_index": m.end + shift,
                },
            }
            for m in answer.marks
        ]

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def _usage(answer: Answer) -> dict[str, int] | None:
    u = answer.usage
    if u is None:
        return None
    total = u.prompt_tokens + u.completion_tokens
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": total,
    }


def _source_event(frame: Frame, n: int, chunk: Chunk, cited: Citation | None) -> dict[str, Any]:
    """Open WebUI's source event for passage ``n``: the verified quote if it was cited."""
    start, end = (cited.start, cited.end) if cited else (chunk.start, chunk.end)
    url = frame.url(chunk.source, start, end)
    name = f"[{n}] {chunk.title or chunk.source}"
    return {
        "type": "source",
        "data": {
            "source": {"id": url, "name": name, "url": url},
            "document": [cited.quote if cited else chunk.text],
            "metadata": [{"source": url, "name": name, "file": chunk.source}],
        },
    }


def _open_webui_sources(frame: Frame, answer: Answer) -> list[dict[str, Any]]:
    if answer.prompt is None or not answer.citations:
        return []
    first: dict[int, Citation] = {}
    for c in answer.citations:
        first.setdefault(c.n, c)
    passages = answer.prompt.passages[: max(first)]
    return [_source_event(frame, n, p, first.get(n)) for n, p in enumerate(passages, 1)]


def _stream(
    frame: Frame, body: ChatRequest, answers: AnswerDep, metrics: MetricsDep, question: Question
) -> StreamingResponse:
    # Retrieval runs now, so a missing index is a plain error response, not one inside a stream.
    _, events = answers.ask_stream(question)
    with_usage = body.stream_options is not None and body.stream_options.include_usage

    def sse() -> abc.Generator[bytes]:
        yield frame.chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        streamed = 0  # characters of content sent
        try:
            for event in events:
                if isinstance(event, Delta):
                    streamed += len(event.text)
                    piece = {"content": event.text}
                    yield frame.chunk([{"index": 0, "delta": piece, "finish_reason": None}])
                    continue
                metrics.observe_answer(event)
                shift = 0
                if event.fallback_reason == UNVERIFIED or event.refusal_reason == "unverified":
                    # The LLM's text is out and none of its citations stood: what replaces it
                    # follows it, and the annotations point there.
                    shift = streamed + len(SEPARATOR)
                    piece = {"content": SEPARATOR + event.answer}
                    yield frame.chunk([{"index": 0, "delta": piece, "finish_reason": None}])
                for source in _open_webui_sources(frame, event):
                    yield frame.chunk([], event=source)
                sources = frame.sources(event)
                last = {"annotations": frame.annotations(event, sources, shift)}
                yield frame.chunk(
                    [{"index": 0, "delta": last, "finish_reason": "stop"}],
                    sources=[s.model_dump() for s in sources],
                    answerable=event.answerable,
                    standalone_question=event.standalone_question,
                )
                if with_usage:
                    yield frame.chunk([], usage=_usage(event))
        except RagError as exc:
            log.warning("chat stream failed: %s", exc)
            yield f"data: {json.dumps(openai_error(kind_of(exc).status, str(exc)))}\n\n".encode()
            return
        finally:
            close = getattr(events, "close", None)
            if close is not None:  # the generation, and the LLM stream under it, stop now
                close()
        yield b"data: [DONE]\n\n"

    return ClosingStreamingResponse(
        sse(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _completion(frame: Frame, answer: Answer) -> dict[str, Any]:
    sources = frame.sources(answer)
    message = {
        "role": "assistant",
        "content": answer.answer,
        "refusal": None,  # OpenAI's field for a safety refusal; "not in the documents" is content
        "annotations": frame.annotations(answer, sources),
    }
    return {
        "id": frame.id,
        "object": "chat.completion",
        "created": frame.created,
        "model": frame.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": _usage(answer),
        "sources": [s.model_dump() for s in sources],
        "answerable": answer.answerable,
        "refusal_reason": answer.refusal_reason,
        "standalone_question": answer.standalone_question,
    }


def _task_response(
    frame: Frame, body: ChatRequest, task: ChatTask
) -> dict[str, Any] | StreamingResponse:
    """The task's reply as a completion, or as a stream of one piece when it was asked for."""
    content = reply(task)
    log.info("chat task %s (%s) answered without a search", task.kind, task.client)
    if not body.stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": [],
        }
        return {
            "id": frame.id,
            "object": "chat.completion",
            "created": frame.created,
            "model": frame.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": None,
            "sources": [],
            "chat_task": task.kind,
        }

    def sse() -> abc.Generator[bytes]:
        delta = {"role": "assistant", "content": content, "annotations": []}
        yield frame.chunk(
            [{"index": 0, "delta": delta, "finish_reason": "stop"}],
            sources=[],
            chat_task=task.kind,
        )
        yield b"data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")


def model_id(settings: Settings, collection: str) -> str:
    """One model per collection: ``rag`` answers from ``default``, ``rag/<name>`` from ``name``."""
    base = settings.api.model_id
    return base if collection == DEFAULT else f"{base}/{collection}"


def _collection_of(settings: Settings, model: str) -> str:
    base = settings.api.model_id
    if model == base:
        return DEFAULT
    prefix, _, name = model.partition("/")
    if prefix == base:
        with contextlib.suppress(BadRequest):
            if (name := check_name(name)) != DEFAULT:
                return name
    raise NotFound(f"the model {model[:100]!r} does not exist; GET /v1/models lists them")


@router.get("/v1/models")
def models(settings: SettingsDep, library: LibraryDep) -> dict[str, Any]:
    """A model per collection."""
    return {
        "object": "list",
        "data": [
            {
                "id": model_id(settings, name),
                "object": "model",
                "created": 0,
                "owned_by": "rag-service",
            }
            for name in library.collections.names()
        ],
    }


@router.post("/v1/chat/completions", response_model=None)
def chat_completions(
    request: Request,
    body: ChatRequest,
    answers: AnswerDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    library: LibraryDep,
    _: AnswerSlot,
) -> dict[str, Any] | StreamingResponse:
    collection = _collection_of(settings, body.model)
    frame = Frame(request, body.model, collection)
    task = body.task()
    if task is not None:
        metrics.observe_chat_task(task.kind)
        return _task_response(frame, body, task)
    answers = answers.over(library.search(collection))
    question = body.to_ask().to_question(settings.llm)
    if body.stream:
        return _stream(frame, body, answers, metrics, question)
    answer = answers.ask(question)
    metrics.observe_answer(answer)
    return _completion(frame, answer)

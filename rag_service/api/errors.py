"""Every error a caller sees, as an RFC 9457 ``application/problem+json`` body with a request id.

Domain exceptions map to a status and a problem ``type`` here, once; routes raise them and never
build HTTP errors. The ``type`` is a stable URI per kind of problem, so a client can tell "no
index yet" from "store down" (both 503) without reading the prose in ``detail``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_service.errors import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    ConfigError,
    CrossSite,
    DocumentUnreadable,
    Forbidden,
    HostNotAllowed,
    IndexBusy,
    IndexNotReady,
    LengthRequired,
    NameTaken,
    NotFound,
    RagError,
    RateLimited,
    RequestTimeout,
    ServerBusy,
    StateUnavailable,
    StoreUnavailable,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

PROBLEM_TYPE = "urn:rag-service:problem:"
INTERNAL_ERROR = PROBLEM_TYPE + "internal-error"
INVALID_REQUEST = PROBLEM_TYPE + "invalid-request"
NOT_READY = PROBLEM_TYPE + "not-ready"


@dataclass(frozen=True)
class ProblemKind:
    status: int
    type: str


def _kind(status: int, name: str) -> ProblemKind:
    return ProblemKind(status, PROBLEM_TYPE + name)


# Most specific first: the first matching class decides.
PROBLEMS: dict[type[RagError], ProblemKind] = {
    UpstreamTimeout: _kind(504, "llm-timeout"),
    UpstreamError: _kind(502, "llm-failed"),
    IndexNotReady: _kind(503, "index-not-ready"),
    StoreUnavailable: _kind(503, "store-unavailable"),
    StateUnavailable: _kind(503, "state-unavailable"),
    IndexBusy: _kind(409, "index-busy"),
    NameTaken: _kind(409, "name-taken"),
    DocumentUnreadable: _kind(422, "document-unreadable"),
    ConfigError: _kind(500, "config-error"),
    Unauthorized: _kind(401, "unauthorized"),
    CrossSite: _kind(403, "cross-site"),
    Forbidden: _kind(403, "forbidden"),
    RateLimited: _kind(429, "rate-limited"),
    BadRequest: _kind(400, "bad-request"),
    NotFound: _kind(404, "not-found"),
    HostNotAllowed: _kind(400, "host-not-allowed"),
    BodyTooLarge: _kind(413, "body-too-large"),
    LengthRequired: _kind(411, "length-required"),
    BodyTimeout: _kind(408, "body-timeout"),
    RequestTimeout: _kind(504, "request-timeout"),
    ServerBusy: _kind(503, "server-busy"),
}


def kind_of(exc: RagError) -> ProblemKind:
    return next(
        (k for t, k in PROBLEMS.items() if isinstance(exc, t)), ProblemKind(500, INTERNAL_ERROR)
    )


def problem_body(
    request: Request, status: int, detail: str, problem_type: str = "about:blank", **extra: Any
) -> dict[str, Any]:
    """``about:blank`` (RFC 9457: the status says it all) is left for plain HTTP errors such
    as an unknown path or method."""
    return {
        "type": problem_type,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
        **extra,
    }


def problem(
    request: Request,
    status: int,
    detail: str,
    problem_type: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(request, status, detail, problem_type, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_problem(request: Request, exc: RagError) -> JSONResponse:
    """The response for a domain error, also used by the ASGI middleware outside the router."""
    kind = kind_of(exc)
    return problem(request, kind.status, str(exc), kind.type, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def _domain(request: Request, exc: RagError) -> JSONResponse:
        return domain_problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        # The first error in the detail, so a client that shows only `detail` says what is wrong.
        first = errors[0] if errors else None
        where = ".".join(str(part) for part in first["loc"]) if first else ""
        detail = (
            f"the request is not valid: {where}: {first['msg']}"
            if first
            else ("the request is not valid")
        )
        return problem(request, 422, detail[:500], INVALID_REQUEST, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own headers matter: a 405 says in `Allow` which methods the path takes.
        return problem(request, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(
            request, 500, "internal error; the server log has the details", INTERNAL_ERROR
        )

"""Every error a caller sees, as an RFC 9457 ``application/problem+json`` body with a request id.

Domain exceptions map to a status here, once; routes raise them and never build HTTP errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_service.errors import (
    BodyTimeout,
    BodyTooLarge,
    ConfigError,
    DocumentUnreadable,
    HostNotAllowed,
    IndexBusy,
    IndexNotReady,
    RagError,
    RequestTimeout,
    ServerBusy,
    StoreUnavailable,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first matching class decides.
STATUS_OF: dict[type[RagError], int] = {
    UpstreamTimeout: 504,
    UpstreamError: 502,
    IndexNotReady: 503,
    StoreUnavailable: 503,
    IndexBusy: 409,
    DocumentUnreadable: 422,
    ConfigError: 500,
    HostNotAllowed: 400,
    BodyTooLarge: 413,
    BodyTimeout: 408,
    RequestTimeout: 504,
    ServerBusy: 503,
}


def status_of(exc: RagError) -> int:
    return next((s for t, s in STATUS_OF.items() if isinstance(exc, t)), 500)


def headers_of(exc: RagError) -> dict[str, str]:
    """Response headers an error carries besides its body."""
    if isinstance(exc, ServerBusy):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, BodyTooLarge | BodyTimeout | RequestTimeout):
        # The rest of the body is not read, so the connection cannot carry another request.
        return {"Connection": "close"}
    return {}


def problem_body(request: Request, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "about:blank",
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
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(request, status, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_problem(request: Request, exc: RagError) -> JSONResponse:
    """The response for a domain error, also used by the ASGI middleware outside the router."""
    return problem(request, status_of(exc), str(exc), headers=headers_of(exc))


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
        return problem(request, 422, "the request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own headers matter: a 405 says in `Allow` which methods the path takes.
        return problem(request, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem(request, 500, "internal error; the server log has the details")

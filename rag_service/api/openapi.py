"""The OpenAPI document as the API really behaves: every error is the problem+json body of
``api/errors.py`` (FastAPI would document a 422 ``HTTPValidationError`` no response has), and
each operation lists the statuses it can answer with beside its success."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from rag_service.api.errors import PROBLEM_JSON

# Prometheus' classic text exposition format: every Prometheus server negotiates it.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where: body, then the field path.")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the request id that is also in ``X-Request-ID``."""

    model_config = ConfigDict(extra="allow")  # e.g. /readyz adds its checks

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None


class ValidationProblem(Problem):
    errors: list[ValidationIssue]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """The error body of the OpenAI-compatible routes (what OpenAI clients parse)."""

    error: OpenAIErrorDetail


# Statuses any request may get from the bounds of api/limits.py and the error handlers.
_EVERY_REQUEST = {
    "400": "The Host header names a host this server does not serve.",
    "500": "Unexpected error (no stack trace; the server log has it).",
    "504": "No response began within RAG_API__REQUEST_TIMEOUT_S.",
}
_WITH_BODY = {
    "408": "The body did not arrive within RAG_API__BODY_TIMEOUT_S.",
    "413": "The body is larger than RAG_API__MAX_BODY_BYTES.",
}
_NO_COLLECTION = {"404": "No such collection."}
_MIRRORED = "The collection mirrors a folder of the server: RAG_API__WRITE_MIRRORED is off."
_UPLOAD = {
    "400": "A path that could escape the folder, a hidden path, an invisible character, or an "
    "unsupported format.",
    "403": _MIRRORED,
    "404": "No such collection.",
    "408": "The upload did not arrive within RAG_API__UPLOAD_TIMEOUT_S.",
    "411": "No Content-Length.",
    "409": "The path differs only in case from another document of the collection.",
    "413": "Larger than RAG_API__MAX_UPLOAD_BYTES (or one file than RAG_INGEST__MAX_FILE_BYTES).",
    "503": "RAG_API__MAX_QUEUED_JOBS document jobs are waiting (with Retry-After).",
}
_BY_OPERATION = {
    ("get", "/readyz"): {"503": "Not ready; the problem lists every check."},
    ("get", "/v1/index"): {"503": "No index has been committed yet."},
    ("post", "/v1/search"): {
        **_NO_COLLECTION,
        "503": "No index yet, or the vector store does not answer.",
    },
    ("put", "/v1/collections/{name}"): {
        "409": "A collection whose name differs only in case exists.",
    },
    ("delete", "/v1/collections/{name}"): {
        "400": "The default collection cannot be deleted.",
        **_NO_COLLECTION,
        "409": "A reindex of the collection (the CLI's) is under way, or one of its document "
        "jobs did not stop within 30 s of being cancelled.",
    },
    ("get", "/v1/collections/{name}/documents"): _NO_COLLECTION,
    ("get", "/v1/collections/{name}/documents/{path}"): {
        "400": "A path that could escape the folder.",
        "404": "No such collection or document.",
        "503": "The collection has no committed index yet.",
    },
    ("put", "/v1/collections/{name}/documents/{path}"): _UPLOAD,
    ("post", "/v1/collections/{name}/documents"): _UPLOAD,
    ("delete", "/v1/collections/{name}/documents/{path}"): {
        "400": "A path that could escape the folder.",
        "403": _MIRRORED,
        "404": "No such collection, or no such document in it (a hidden file, another format, "
        "a file it has not indexed).",
        "503": "RAG_API__MAX_QUEUED_JOBS document jobs are waiting (with Retry-After).",
    },
    ("get", "/v1/jobs/{job_id}"): {"404": "No such job."},
    ("delete", "/v1/jobs/{job_id}"): {"404": "No such job."},
    ("post", "/v1/ask"): {
        **_NO_COLLECTION,
        "502": "The LLM endpoint failed.",
        "503": "No index yet, the store does not answer, or every answer slot is busy "
        "(then with Retry-After).",
        "504": "The LLM, or the whole request, took too long.",
    },
    ("post", "/v1/chat/completions"): {
        "400": "Not a chat completion this service can answer (OpenAI's error shape).",
        "404": "No such model; GET /v1/models lists them.",
        "502": "The LLM endpoint failed.",
        "503": "No index yet, the store does not answer, or every answer slot is busy.",
        "504": "The LLM, or the whole request, took too long.",
    },
    ("get", "/documents/{source}"): {
        "400": "A path that could escape the indexed folder, or a span outside the document.",
        "404": "No such collection, or no such document in its served index.",
        "503": "No index has been committed yet.",
    },
    ("get", "/v1/documents/{source}"): {
        "400": "A path that could escape the indexed folder, or a span outside the document.",
        "404": "No such collection, or no such document in its served index.",
        "503": "No index has been committed yet.",
    },
}
# With keys required (api/auth.py), on every route that asks for one.
_KEYED = {
    "401": "No API key, or not a valid one (with WWW-Authenticate: Bearer).",
    "403": "The key's scope does not allow this.",
    "429": "Past the caller's rate limit (with Retry-After).",
}
_OPEN = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
# Every method but these, on every path (api/cross_site.py).
_SAFE = {"get", "head", "options"}
_CROSS_SITE = (
    "A browser's request from another site (its Origin or Sec-Fetch-Site says so) whose "
    "origin is not in RAG_API__CORS_ORIGINS."
)
# The OpenAI-compatible routes answer their own errors in OpenAI's shape; the bounds in front of
# every route (Host, body size and deadline) answer problem+json before any route runs.
_OPENAI_PREFIXES = ("/v1/chat/", "/v1/models")


def _problem(description: str, schema: str = "Problem", openai: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    if openai:
        content["application/json"] = {"schema": {"$ref": "#/components/schemas/OpenAIError"}}
    return {"description": description, "content": content}


def _document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for model in (ValidationIssue, Problem, ValidationProblem, OpenAIError):
        schemas[model.__name__] = model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas.update(schemas[model.__name__].pop("$defs", {}))
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = _problem("The request is not valid.", "ValidationProblem")
            errors = dict(_EVERY_REQUEST)
            forbidden = []  # each reason a 403 can have here, not only the most specific
            if (method, path) not in _OPEN:
                errors.update(_KEYED)
                forbidden.append(_KEYED["403"])
            if "requestBody" in operation:
                errors.update(_WITH_BODY)
            own = _BY_OPERATION.get((method, path), {})
            errors.update(own)
            if "403" in own:
                forbidden.append(own["403"])
            if method not in _SAFE:
                forbidden.append(_CROSS_SITE)
            if forbidden:
                errors["403"] = " Or: ".join(forbidden)
            openai = path.startswith(_OPENAI_PREFIXES)
            for status, description in errors.items():
                # An operation's own description is more precise than the generic one.
                responses[status] = _problem(description, openai=openai)
            responses.setdefault("405", _problem("Method not allowed; `Allow` lists the others."))
            responses["405"]["headers"] = {
                "Allow": {
                    "description": "The methods this path takes.",
                    "schema": {"type": "string"},
                }
            }
    return doc


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override

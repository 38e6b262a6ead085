"""The OpenAPI document tells the truth, checked against a real `rag serve`: errors are the
problem+json bodies they are, content types and `Allow` are declared, types are strict; and
schemathesis, generating requests from that document, finds no response that contradicts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.modes import GenerationMode

from ingest.reindex import FolderIndexer
from rag_service.api.app import create_app
from rag_service.collections import check_name
from rag_service.errors import BadRequest
from rag_service.settings import Settings
from tests.api.test_http import assert_problem
from tests.servers import api_server

pytestmark = pytest.mark.api

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]) -> Iterator[str]:
    with api_server(tmp_path_factory.mktemp("openapi"), indexed_docs) as url:
        yield url


@pytest.fixture(scope="module")
def document(api: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{api}/openapi.json").json()
    return doc


def test_errors_are_documented_as_problem_details(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            # The OpenAI-compatible routes answer in OpenAI's error shape too (their clients
            # parse it); the bounds in front of every route answer problem+json.
            openai = path.startswith(("/v1/chat/", "/v1/models"))
            expected = [PROBLEM, "application/json"] if openai else [PROBLEM]
            for status, response in operation["responses"].items():
                if not status.startswith("2") and status not in ("405", "422"):
                    assert list(response["content"]) == expected, (method, path, status)
                elif not status.startswith("2"):
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
            if "requestBody" in operation:
                invalid = operation["responses"]["422"]["content"][PROBLEM]["schema"]
                assert invalid == {"$ref": "#/components/schemas/ValidationProblem"}
                assert {"408", "413"} <= set(operation["responses"])
            assert "Allow" in operation["responses"]["405"]["headers"]
    keyed = document["paths"]["/v1/search"]["post"]["responses"]
    assert {"401", "403", "429"} <= set(keyed)
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]
    problem = document["components"]["schemas"]["ValidationProblem"]
    assert {"status", "detail", "request_id", "errors"} <= set(problem["properties"])


def test_every_state_changing_operation_documents_the_cross_site_403(
    document: dict[str, Any],
) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            forbidden = operation["responses"].get("403", {}).get("description", "")
            assert ("RAG_API__CORS_ORIGINS" in forbidden) is (method not in ("get", "head")), (
                method,
                path,
            )
    for method, path in [
        ("put", "/v1/collections/{name}/documents/{path}"),
        ("post", "/v1/collections/{name}/documents"),
        ("delete", "/v1/collections/{name}/documents/{path}"),
    ]:
        forbidden = document["paths"][path][method]["responses"]["403"]["description"]
        assert "RAG_API__WRITE_MIRRORED" in forbidden and "scope" in forbidden


def test_content_types_are_declared_and_served(api: str, document: dict[str, Any]) -> None:
    ask = document["paths"]["/v1/ask"]["post"]["responses"]["200"]["content"]
    assert set(ask) == {"application/json", "text/event-stream"}
    metrics_types = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics_types) == ["text/plain; version=0.0.4; charset=utf-8"]
    assert httpx.get(f"{api}/metrics").headers["content-type"] in metrics_types


def test_a_wrong_method_is_405_with_allow(api: str) -> None:
    wrong = httpx.get(f"{api}/v1/search")
    assert_problem(wrong, 405)
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/search", {"query": "heads", "top_k": "5"}),
        ("/v1/search", {"query": "heads", "top_k": True}),
        ("/v1/search", {"query": "heads", "top_k": 5.5}),
        ("/v1/ask", {"question": "heads?", "stream": 0}),
        ("/v1/ask", {"question": "heads?", "top_k": "3"}),
        ("/v1/search", {"query": "heads", "filters": {"sources": "a.md"}}),
    ],
)
def test_types_are_strict_not_coerced(api: str, path: str, body: dict[str, Any]) -> None:
    assert_problem(httpx.post(f"{api}{path}", json=body), 422)


def test_a_whole_float_is_an_integer_as_in_json_schema(api: str) -> None:
    assert httpx.post(f"{api}/v1/search", json={"query": "heads", "top_k": 2.0}).status_code == 200


def test_a_blank_question_is_refused_and_documented_as_such(
    api: str, document: dict[str, Any]
) -> None:
    assert_problem(httpx.post(f"{api}/v1/search", json={"query": "   "}), 422)
    query = document["components"]["schemas"]["SearchRequest"]["properties"]["query"]
    assert query["pattern"] == r"\S"


# Every operation of the document, positive and negative cases, every registered check, a
# bounded number of cases. Schemathesis' pytest plugin does not run under pytest 9, so the
# hypothesis tests are built here, from the app's own document (the one the server serves).
CASES = 30  # per operation and mode: (11 + 2) x 30 = 390 at most


def _is_collection_name(text: str) -> bool:
    try:
        return check_name(text) == text
    except BadRequest:
        return False


# The document's own format for a collection name: the rule no JSON Schema pattern can state.
schemathesis.openapi.format(
    "collection-name", st.text(min_size=1, max_size=64).filter(_is_collection_name)
)
load_all_checks()
ALL_CHECKS = [check for check in CHECKS.get_all() if callable(check)]
OPERATIONS = {
    op.label: op
    for op in (
        result.ok()
        for result in schemathesis.openapi.from_dict(
            create_app(Settings(), FolderIndexer).openapi()
        ).get_all_operations()
    )
}


def test_every_operation_is_fuzzed() -> None:
    assert set(OPERATIONS) == {
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v1/index",
        "POST /v1/search",
        "POST /v1/ask",
        "GET /v1/keys",
        "GET /v1/models",
        "POST /v1/chat/completions",
        "GET /documents/{source}",
        "GET /v1/documents/{source}",
        "GET /v1/collections",
        "PUT /v1/collections/{name}",
        "DELETE /v1/collections/{name}",
        "GET /v1/collections/{name}/documents",
        "POST /v1/collections/{name}/documents",
        "GET /v1/collections/{name}/documents/{path}",
        "PUT /v1/collections/{name}/documents/{path}",
        "DELETE /v1/collections/{name}/documents/{path}",
        "GET /v1/jobs/{job_id}",
        "DELETE /v1/jobs/{job_id}",
    }


# Uploads are valid by rules no schema states (the loaders' formats, no `..` or hidden path
# components): a schema-valid upload may well be a 400, which positive fuzzing counts as a
# failure. tests/api/test_collections.py checks those rules; negative cases still run here.
UPLOADS = {"PUT /v1/collections/{name}/documents/{path}", "POST /v1/collections/{name}/documents"}
# Negative cases need something to get wrong: only the operations that take a body have one.
RUNS = [
    (label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS) if label not in UPLOADS
] + [
    (label, GenerationMode.NEGATIVE)
    for label in sorted(OPERATIONS)
    if label.startswith("POST") or label in UPLOADS
]


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_the_live_api_keeps_to_its_document(api: str, label: str, mode: GenerationMode) -> None:
    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases every run: a failure here is reproducible
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=api, checks=ALL_CHECKS, timeout=60)

    check()

"""Operations: liveness, readiness, metrics, and what index is served."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest

from rag_service.answering import AnswerService
from rag_service.api.auth import METRICS, QUERY
from rag_service.api.deps import AnswerDep, LibraryDep, MetricsDep, SearchDep
from rag_service.api.errors import NOT_READY, problem
from rag_service.api.openapi import METRICS_CONTENT_TYPE
from rag_service.errors import RagError, StateUnavailable, StoreUnavailable, UpstreamError
from rag_service.protocols import StateStore
from rag_service.serving import SearchService

router = APIRouter(tags=["operations"])


@dataclass(frozen=True)
class Check:
    ok: bool | None  # None: not checked, because an earlier check failed
    detail: str


def _index_and_store(search: SearchService) -> tuple[Check, Check]:
    """Loads the committed index if this process has not yet, and asks the store for the
    collection's size: a real round trip to a Chroma server."""
    try:
        with search.current() as served:
            chunks = served.store.count()
            generation = served.pointer.generation
    except StoreUnavailable as exc:
        return Check(None, "not checked: the store is unavailable"), Check(False, str(exc))
    except RagError as exc:
        return Check(False, str(exc)), Check(None, "not checked: no index loaded")
    return Check(True, f"generation {generation}"), Check(True, f"{chunks} vectors stored")


def _llm(answers: AnswerService) -> Check:
    try:
        return Check(True, answers.check_llm())
    except UpstreamError as exc:
        return Check(False, str(exc))


def _state(state: StateStore) -> Check:
    try:
        state.check()
    except StateUnavailable as exc:
        return Check(False, str(exc))
    return Check(True, state.backend)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up. Says nothing about the index or the store: see /readyz."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(
    request: Request, search: SearchDep, answers: AnswerDep, library: LibraryDep
) -> dict[str, Any] | Response:
    """Ready to answer: the index is loaded, the store answers, and so does the LLM (when one is
    configured). 503 problem with every check otherwise. The state store (PostgreSQL) being
    away is ``degraded``, still 200: the loaded index keeps answering; what needs the state
    (a new generation, documents, keys made since) waits for it."""
    index, store = _index_and_store(search)
    llm = _llm(answers)
    state = _state(library.state)
    checks = {"index": index, "store": store, "llm": llm, "state": state}
    failed = [f"{name}: {check.detail}" for name, check in checks.items() if check.ok is False]
    body = {name: asdict(check) for name, check in checks.items()}
    if failed and failed != [f"state: {state.detail}"]:
        return problem(request, 503, "not ready; " + "; ".join(failed), NOT_READY, checks=body)
    return {"status": "degraded" if failed else "ready", "checks": body}


@router.get(
    "/metrics",
    dependencies=[METRICS],
    response_class=Response,
    responses={200: {"content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(metrics.registry), media_type=METRICS_CONTENT_TYPE)


@router.get("/v1/index", dependencies=[QUERY])
def index_status(search: SearchDep) -> dict[str, Any]:
    """The index being served: 503 problem if there is none yet."""
    with search.current() as served:
        pointer = served.pointer
    return {
        "collection": pointer.collection,
        "generation": pointer.generation,
        "sources": pointer.sources,
        "chunks": pointer.chunks,
        "committed_at": pointer.committed_at,
    }

"""Route dependencies as ``Annotated`` aliases; the lifespan puts the objects on app.state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from rag_service.answering import AnswerService
from rag_service.api.limits import AnswerSlots
from rag_service.api.metrics import ApiMetrics
from rag_service.jobs import JobRunner
from rag_service.protocols import Indexer
from rag_service.serving import Library, SearchService
from rag_service.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_library(request: Request) -> Library:
    library: Library = request.app.state.library
    return library


LibraryDep = Annotated[Library, Depends(get_library)]


def get_search(request: Request) -> SearchService:
    """The default collection's search (readiness, metrics, the document view's default)."""
    return get_library(request).default


SearchDep = Annotated[SearchService, Depends(get_search)]


def get_jobs(request: Request) -> JobRunner:
    jobs: JobRunner = request.app.state.jobs
    return jobs


JobsDep = Annotated[JobRunner, Depends(get_jobs)]


def get_indexer(request: Request) -> Indexer:
    indexer: Indexer = request.app.state.indexer
    return indexer


IndexerDep = Annotated[Indexer, Depends(get_indexer)]


def get_answers(request: Request) -> AnswerService:
    service: AnswerService = request.app.state.answers
    return service


AnswerDep = Annotated[AnswerService, Depends(get_answers)]


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]


async def answer_slot(request: Request) -> AsyncIterator[None]:
    """Held while an answer is generated; FastAPI exits it after the response, streams included."""
    slots: AnswerSlots = request.app.state.answer_slots
    await slots.acquire()
    try:
        yield
    finally:
        slots.release()


AnswerSlot = Annotated[None, Depends(answer_slot)]

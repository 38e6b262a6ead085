"""The FastAPI app. The lifespan builds every component from one ``Settings``."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from rag_service.answering import build_answer_service
from rag_service.api.auth import Gate
from rag_service.api.cross_site import CrossSiteGuard
from rag_service.api.errors import install_error_handlers
from rag_service.api.limits import AnswerSlots, RequestLimits
from rag_service.api.metrics import ApiMetrics
from rag_service.api.openapi import install_openapi
from rag_service.api.routes import (
    ask,
    chat,
    collections,
    documents,
    health,
    jobs,
    keys,
    pages,
    search,
)
from rag_service.embedders import build_embedder
from rag_service.errors import RagError
from rag_service.jobs import JobRunner
from rag_service.logs import request_id
from rag_service.protocols import Embedder, Indexer
from rag_service.rerankers import build_reranker
from rag_service.retrieval.tokenize import tokenize
from rag_service.serving import Library, SearchService
from rag_service.settings import Settings
from rag_service.state import close_states

log = logging.getLogger(__name__)
access_log = logging.getLogger("rag_service.access")

# A caller's request id is echoed only if it is short and plain: it ends up in every log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")

# Probed every few seconds by orchestrators: logged at DEBUG so they do not drown the log.
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


def _route_template(request: Request) -> str:
    """The matched route's path template (set by the router once it has routed the request)."""
    return str(getattr(request.scope.get("route"), "path", "<unmatched>"))


def _load_index(search: SearchService) -> None:
    """Load the committed index at start, not on the first request (~0.3 s at 10k chunks). Its
    absence is no reason not to start: a reindex may come later, and /readyz says so till then."""
    try:
        with search.current() as served:
            log.info("serving generation %d", served.pointer.generation)
    except RagError as exc:
        log.warning("not serving an index yet: %s", exc)


def create_app(settings: Settings, indexer: Callable[[Settings, Embedder], Indexer]) -> FastAPI:
    """``indexer`` builds what document jobs run (``ingest.reindex.FolderIndexer``: the service
    does not import ``ingest``, whose imports run the other way)."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedder = build_embedder(settings.embedder)
        reranker = build_reranker(settings, embedder)
        library = Library(settings, embedder, reranker, on_timings=metrics.observe_search)
        search = library.default
        answers = build_answer_service(settings, search)
        # Jobs embed with an instance of their own, loaded in (and run by) their low-priority
        # worker threads with one intra-op thread: a query never waits for the model's lock
        # behind a job, and wins the CPU from it.
        background = build_embedder(settings.embedder, threads=1)
        app.state.indexer = indexer(settings, background)
        runner = JobRunner(
            library.state.jobs(),
            library.collections,
            app.state.indexer,
            max_queued=settings.api.max_queued_jobs,
            nice=settings.ingest.job_nice,
        )
        metrics.watch_index(search)
        # Load models now, not on the first request.
        await anyio.to_thread.run_sync(embedder.warm_up)
        if reranker is not None:
            await anyio.to_thread.run_sync(reranker.warm_up)
        await anyio.to_thread.run_sync(answers.warm_up)
        # The first query would otherwise pay for jieba's dictionary (~1 s) and torch's first run.
        await anyio.to_thread.run_sync(tokenize, "预热 warm-up")
        await anyio.to_thread.run_sync(embedder.embed_query, "warm-up")
        await anyio.to_thread.run_sync(_load_index, search)
        app.state.library, app.state.answers, app.state.jobs = library, answers, runner
        runner.start()  # resumes the jobs a stopped server (or a dead replica) left unfinished
        yield
        await anyio.to_thread.run_sync(runner.close)
        library.close()
        close_states()
        answers.close()
        if reranker is not None:
            reranker.close()
        embedder.close()
        background.close()

    app = FastAPI(title="rag-service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.gate = Gate(settings)  # refuses to build a server that needs keys and has none
    app.state.answer_slots = AnswerSlots(
        settings.api.max_concurrent_answers, settings.api.answer_queue_timeout_s
    )
    install_error_handlers(app)
    install_openapi(app)
    # Added before `observe`, so these run inside it: their refusals carry a request id and are
    # logged. The last added runs first: another site's write is refused before its body is read.
    app.add_middleware(RequestLimits, settings=settings)
    app.add_middleware(CrossSiteGuard, settings=settings)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Request id (echoed in ``X-Request-ID`` and on every log line), access log, metrics."""
        offered = request.headers.get("x-request-id", "")
        rid = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        request.state.request_id = rid
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500  # unless a response comes back
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            seconds = time.perf_counter() - started
            path = request.url.path
            metrics.observe_request(request.method, _route_template(request), status, seconds)
            access_log.log(
                logging.DEBUG if path in _PROBES else logging.INFO,
                "%s %s %d %.1f ms",
                request.method,
                path,
                status,
                seconds * 1000,
                extra={
                    "method": request.method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": request.client.host if request.client else None,
                    # the key's name (never the key), once the route's auth check has run
                    "caller": getattr(request.state, "caller", None),
                },
            )
            request_id.reset(token)

    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(ask.router)
    app.include_router(keys.router)
    app.include_router(chat.router)
    app.include_router(documents.router)
    app.include_router(collections.router)
    app.include_router(jobs.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    return app

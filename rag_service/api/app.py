"""The FastAPI app. The lifespan builds every component from one ``Settings``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request, Response

from rag_service.api.errors import install_error_handlers
from rag_service.api.routes import ask, health, search
from rag_service.embedders import build_embedder
from rag_service.pipeline import build_answer_service
from rag_service.rerankers import build_reranker
from rag_service.retrieval.tokenize import tokenize
from rag_service.search import SearchService
from rag_service.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        embedder = build_embedder(settings.embedder)
        reranker = build_reranker(settings.retrieval)
        search = SearchService(settings, embedder, reranker)
        answers = build_answer_service(settings, search)
        for component in (embedder, reranker, answers.llm):
            warm_up = getattr(component, "warm_up", None)
            if warm_up is not None:  # load models now, not on the first request
                await anyio.to_thread.run_sync(warm_up)
        # The first query would otherwise pay for jieba's dictionary (~1 s) and torch's first run.
        await anyio.to_thread.run_sync(tokenize, "预热 warm-up")
        await anyio.to_thread.run_sync(embedder.embed_query, "warm-up")
        app.state.search, app.state.answers = search, answers
        yield
        search.close()
        close = getattr(answers.llm, "close", None)
        if close is not None:
            close()

    app = FastAPI(title="rag-service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(ask.router)
    return app

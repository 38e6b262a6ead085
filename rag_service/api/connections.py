"""A bound below the ASGI app, on the connection itself: the request head (request line and
headers) must arrive within ``RAG_API__HEADER_TIMEOUT_S``.

uvicorn's HTTP/1.1 protocol waits for a head as long as the client keeps its socket open: a
connection opened and never written to, or one that sends a header byte every few seconds,
holds its socket and a place in the server's connection count for as long as it likes, and a
few hundred of them hold the server. Nothing above this layer can help: the app sees a request
only once its head is complete (the body's bound is ``limits.py``'s, an ASGI middleware).

The timer starts when a connection opens and, on a kept-alive one, when the next request's first
byte arrives (the idle wait before it is uvicorn's keep-alive timeout); it stops when the head
is complete. When it fires, a client that began a head gets 408 (problem+json) and the
connection is closed; one that sent nothing is closed, as an idle keep-alive connection is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rag_service.api.errors import PROBLEM_JSON, PROBLEM_TYPE

log = logging.getLogger(__name__)

HEAD_TIMEOUT = PROBLEM_TYPE + "header-timeout"


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its default when httptools is installed, as we require)
    with the head's deadline; ``bounded_http`` makes one with a given timeout."""

    head_timeout_s: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        if self._head_timer is None:  # a kept-alive connection's next request
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_begun = False
        super().on_headers_complete()

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: close once it is sent, rather
            # than cut it or write a 408 into it.
            self.cycle.keep_alive = False
            return
        if self._head_begun:
            rid = uuid.uuid4().hex
            client = self.client[0] if self.client else None
            log.info(
                "request head not complete within %g s; closed",
                self.head_timeout_s,
                extra={"status": 408, "client": client, "request_id": rid},
            )
            self.transport.write(_late_head_response(self.head_timeout_s, rid))
        self.transport.close()


def _late_head_response(timeout_s: float, rid: str) -> bytes:
    body = json.dumps(
        {
            "type": HEAD_TIMEOUT,
            "title": "Request Timeout",
            "status": 408,
            "detail": f"the request line and headers did not arrive within {timeout_s:g} s "
            "(RAG_API__HEADER_TIMEOUT_S)",
            "request_id": rid,
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {rid}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def bounded_http(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``), with this bound on the head."""
    return type("BoundedHttpProtocol", (HeadTimeoutProtocol,), {"head_timeout_s": header_timeout_s})

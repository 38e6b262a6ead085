"""Bounds below the ASGI app, on the connection itself: the request head (request line and
headers) must arrive within ``RAG_API__HEADER_TIMEOUT_S`` and within ``MAX_HEAD_BYTES``.

uvicorn's HTTP/1.1 protocol waits for a head as long as the client keeps its socket open, and
buffers as much of it as the client sends: a connection opened and never written to, or one
that sends a header byte every few seconds, holds its socket and a place in the server's
connection count for as long as it likes (a few hundred of them hold the server), and one
endless header holds memory. Nothing above this layer can help: the app sees a request only
once its head is complete (the body's bounds are ``limits.py``'s, an ASGI middleware).

The timer starts when a connection opens and, on a kept-alive one, when the next request's first
byte arrives (the idle wait before it is uvicorn's keep-alive timeout); it stops when the head
is complete. A client that began a head and broke a bound gets 408 or 431 (problem+json) and
the connection is closed; one that sent nothing is closed, as an idle keep-alive connection is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rag_service.api.errors import PROBLEM_JSON, PROBLEM_TYPE

log = logging.getLogger(__name__)

# nginx's default allows 4 x 8 KiB of headers; our own clients send well under 8 KiB.
MAX_HEAD_BYTES = 64 * 1024


class HeadBoundProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its default when httptools is installed, as we require)
    with the head's deadline and size; ``bounded_http`` makes one with a given timeout."""

    head_timeout_s: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False
        self._head_bytes = 0
        self._ends = 0  # heads and messages completed: which reads hold only a head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        ends = self._ends
        super().data_received(data)
        # A read in which no head and no body ended holds nothing but the pending head.
        if self._head_begun and self._ends == ends:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._disarm()
                self._refuse(
                    431, "header-too-large", f"the request head exceeds {MAX_HEAD_BYTES} bytes"
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun, self._head_bytes = True, 0
        if self._head_timer is None:  # a kept-alive connection's next request
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_begun = False
        self._ends += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ends += 1
        super().on_message_complete()

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self._head_begun and not self.transport.is_closing():
            self.transport.close()  # nothing asked, nothing to answer
            return
        self._refuse(
            408,
            "header-timeout",
            f"the request line and headers did not arrive within {self.head_timeout_s:g} s "
            "(RAG_API__HEADER_TIMEOUT_S)",
        )

    def _refuse(self, status: int, name: str, detail: str) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being sent: read no more, and close once
            # that response is sent rather than cut it or write into it.
            self.flow.pause_reading()
            self.cycle.keep_alive = False
            return
        rid = uuid.uuid4().hex
        client = self.client[0] if self.client else None
        log.info(
            "%s; closed", detail, extra={"status": status, "client": client, "request_id": rid}
        )
        self.transport.write(_problem_response(status, name, detail, rid))
        self.transport.close()


def _problem_response(status: int, name: str, detail: str, rid: str) -> bytes:
    """A whole HTTP response written straight to the socket: no request reached the app."""
    title = HTTPStatus(status).phrase
    problem = {"type": PROBLEM_TYPE + name, "title": title, "status": status, "detail": detail}
    body = json.dumps({**problem, "request_id": rid}).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        f"x-request-id: {rid}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def bounded_http(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (``http=``), with this bound on the head's time."""
    return type("BoundedHttpProtocol", (HeadBoundProtocol,), {"head_timeout_s": header_timeout_s})

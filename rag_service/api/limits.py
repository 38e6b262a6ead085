"""Bounds on every request, as pure ASGI middleware in front of the routes.

- the ``Host`` header must name a host this server serves (a DNS-rebinding page reaches a local
  install under a name of its own): 400 otherwise;
- the body is read here, up to ``max_body_bytes`` and within ``body_timeout_s``, before any
  route sees it: 413 as soon as ``Content-Length`` or the bytes received (chunked bodies too) go
  past the limit, 408 when the body is late; either way the rest is never read and the
  connection is closed, so neither a huge nor a trickling body holds memory or a worker;
- a response must begin within ``request_timeout_s``, else 504 (a stream, once begun, is bounded
  by the LLM's own timeout);
- document uploads (``PUT``/``POST`` under ``/v1/collections/{name}/documents``) are the one
  exception to reading ahead: their bodies may be far larger, so they are streamed to disk by
  the route instead, bounded by ``max_upload_bytes`` (413 here already when ``Content-Length``
  says more) and ``upload_timeout_s``.

Plain ASGI rather than ``BaseHTTPMiddleware``: the body has to be counted as it arrives, and a
pure middleware passes streamed responses and disconnects through untouched.
"""

from __future__ import annotations

import ipaddress
import math
import re

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_service.api.auth import auth_required
from rag_service.api.errors import domain_problem
from rag_service.errors import (
    BodyTimeout,
    BodyTooLarge,
    HostNotAllowed,
    RagError,
    RequestTimeout,
    ServerBusy,
)
from rag_service.settings import Settings

_UPLOAD_PATH = re.compile(r"/v1/collections/[^/]+/documents(/.*)?")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names this server answers for; ``None``: any.

    The one place that decides it, so authentication can widen it: with callers authenticated,
    a foreign Host no longer lets a web page read the corpus. Default: loopback names and the
    address the server binds to (unless that is a wildcard such as 0.0.0.0). With keys
    required, any: a page that rebinds a name to this server still has no key to send.
    """
    configured = {h.lower() for h in settings.api.allowed_hosts}
    if "*" in configured:
        return None
    if configured:
        return frozenset(configured)
    if auth_required(settings):
        return None
    bound = settings.api.host.lower().strip("[]")
    return LOOPBACK_NAMES | ({bound} if bound not in _WILDCARD_BINDS else set())


def host_name(header: str) -> str:
    """The name in a Host header, without the port: ``[::1]:8000`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, _, port = header.rpartition(":")
    if name and port.isdigit():
        try:  # a bare IPv6 address has colons of its own
            ipaddress.IPv6Address(header)
        except ValueError:
            return name
    return header


class _Refused(Exception):
    def __init__(self, error: RagError) -> None:
        self.error = error


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)
        self.max_body = settings.api.max_body_bytes
        self.body_timeout_s = settings.api.body_timeout_s
        self.request_timeout_s = settings.api.request_timeout_s
        self.max_upload = settings.api.max_upload_bytes
        self.upload_timeout_s = settings.api.upload_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] in ("PUT", "POST") and _UPLOAD_PATH.fullmatch(scope["path"])
        try:
            self._check_host(scope)
            if upload:
                self._check_length(scope, self.max_upload)
            else:
                body = await self._read_body(scope, receive)
        except _Refused as refused:
            await domain_problem(Request(scope), refused.error)(scope, receive, send)
            return
        if upload:  # the route reads it as it arrives, within upload_timeout_s
            await self._respond_in_time(scope, receive, send, self.upload_timeout_s)
        else:
            await self._respond_in_time(scope, _replay(body, receive), send)

    def _check_host(self, scope: Scope) -> None:
        if self.hosts is None:
            return
        header = next((v for k, v in scope["headers"] if k == b"host"), b"")
        name = host_name(header.decode("latin-1"))
        if name not in self.hosts:
            raise _Refused(
                HostNotAllowed(
                    f"this server does not serve the host {name[:100]!r}; "
                    "see RAG_API__ALLOWED_HOSTS"
                )
            )

    def _check_length(self, scope: Scope, limit: int) -> None:
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _Refused(BodyTooLarge(f"the request body is larger than {limit} bytes"))

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        self._check_length(scope, self.max_body)
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.body_timeout_s) as deadline:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break  # the route will see the disconnect when it asks for more
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    raise _Refused(self._too_large())
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if deadline.cancelled_caught:
            raise _Refused(
                BodyTimeout(f"the request body did not arrive within {self.body_timeout_s:g} s")
            )
        return b"".join(chunks)

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"the request body is larger than {self.max_body} bytes")

    async def _respond_in_time(
        self, scope: Scope, receive: Receive, send: Send, body_s: float = 0.0
    ) -> None:
        """``body_s``: time the route itself spends reading the body, on top of the limit."""
        timeout_s = self.request_timeout_s + body_s
        started = anyio.Event()
        late = False

        async def tracked_send(message: Message) -> None:
            if late:
                return  # a 504 went out instead; what the route writes now has no reader
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        async def watchdog() -> None:
            nonlocal late
            with anyio.move_on_after(timeout_s):
                await started.wait()
                return
            late = True
            error = RequestTimeout(
                f"no response within {timeout_s:g} s (RAG_API__REQUEST_TIMEOUT_S)"
            )
            await domain_problem(Request(scope), error)(scope, receive, send)

        async with anyio.create_task_group() as group:
            group.start_soon(watchdog)
            # A route running in a worker thread cannot be interrupted: it finishes unseen.
            await self.app(scope, receive, tracked_send)
            group.cancel_scope.cancel()


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read ahead, then the client's own messages (its disconnect above all)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class AnswerSlots:
    """At most ``capacity`` answers generated at once; others wait up to ``queue_timeout_s``.

    Generation is what costs CPU (or a paid endpoint's quota): bounded here, a burst queues
    briefly and then gets 503 with ``Retry-After`` instead of slowing every answer down.
    """

    def __init__(self, capacity: int, queue_timeout_s: float) -> None:
        self._slots = anyio.Semaphore(capacity)
        self.capacity = capacity
        self._queue_timeout_s = queue_timeout_s

    async def acquire(self) -> None:
        with anyio.move_on_after(self._queue_timeout_s):
            await self._slots.acquire()
            return
        raise ServerBusy(
            f"all {self.capacity} answer slots are busy; try again shortly",
            retry_after_s=max(1, math.ceil(self._queue_timeout_s)),
        )

    def release(self) -> None:
        self._slots.release()

"""Who is calling, and whether they may: API keys with scopes, per-caller rate limits.

``RAG_API__AUTH`` decides whether a key is needed at all:

- ``auto`` (default): not when the server binds to a loopback address (only this machine can
  reach it: the Host allow-list then stops DNS-rebinding pages), required on any other address;
- ``required``: always; a server that requires keys and has none refuses to start;
- ``off``: never (behind a proxy that authenticates, say).

A key goes in ``Authorization: Bearer rag_…`` or ``X-API-Key: rag_…``. ``query`` keys may search,
ask and chat; ``admin`` keys may also manage documents and collections. With auth off every
caller is treated as admin and rate-limited by client address.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from rag_service.errors import ConfigError, Forbidden, RateLimited, Unauthorized
from rag_service.keys import Scope, grants
from rag_service.settings import Settings
from rag_service.state import open_state


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def auth_required(settings: Settings) -> bool:
    mode = settings.api.auth
    return mode == "required" or (mode == "auto" and not is_loopback(settings.api.host))


@dataclass(frozen=True)
class Caller:
    name: str  # the key's name; "anonymous" when auth is off
    scope: Scope
    client: str  # what rate limits count by: the key, or the address when auth is off


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, in bursts of as many; this
    process only (nginx's ``limit_req`` bounds a set of replicas as a whole)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        if self._rate == 0:
            return
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                raise RateLimited(
                    f"more than {self._burst:g} requests a minute",
                    math.ceil((1 - tokens) / self._rate),
                )
            self._buckets[client] = (tokens - 1, now)
            if len(self._buckets) > 10_000:  # forget callers whose buckets have refilled
                self._buckets = {
                    c: (t, w)
                    for c, (t, w) in self._buckets.items()
                    if t + (now - w) * self._rate < self._burst
                }


class Gate:
    """Identifies the caller of each request, checks the scope and counts it against its limit."""

    def __init__(self, settings: Settings) -> None:
        self.required = auth_required(settings)
        state = open_state(settings)
        self.keys = state.keys()
        self.limiter = RateLimiter(settings.api.rate_limit_per_minute)
        self.metrics_keyed = settings.api.metrics_auth
        if self.required and not self.keys.any():
            where = settings.data_dir if state.backend == "files" else "PostgreSQL"
            raise ConfigError(
                f"API keys are required (RAG_API__AUTH={settings.api.auth}, binding to "
                f"{settings.api.host}) and none exists in {where}: create one with "
                "`rag keys create --name NAME --scope admin`, or bind to 127.0.0.1"
            )

    def admit(self, request: Request, scope: Scope) -> Caller:
        caller = self._identify(request)
        if not grants(caller.scope, scope):
            raise Forbidden(f"the key {caller.name!r} has the query scope; this needs admin")
        self.limiter.take(caller.client)
        request.state.caller = caller.name  # for the access log
        return caller

    def _identify(self, request: Request) -> Caller:
        if not self.required:
            address = request.client.host if request.client else "unknown"
            return Caller("anonymous", "admin", f"address:{address}")
        presented = _presented_key(request)
        if presented is None:
            raise Unauthorized("this server needs an API key: Authorization: Bearer rag_…")
        key = self.keys.verify(presented)
        if key is None:
            raise Unauthorized("the API key is not valid (revoked, or never made here)")
        return Caller(key.name, key.scope, f"key:{key.name}")


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key") or None


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


GateDep = Annotated[Gate, Depends(_gate)]


def _query(request: Request, gate: GateDep) -> Caller:
    return gate.admit(request, "query")


def _admin(request: Request, gate: GateDep) -> Caller:
    return gate.admit(request, "admin")


def _metrics(request: Request, gate: GateDep) -> None:
    if gate.metrics_keyed:
        gate.admit(request, "query")


QueryCaller = Annotated[Caller, Depends(_query)]
AdminCaller = Annotated[Caller, Depends(_admin)]
# For routes that need the check but not the caller: APIRouter(dependencies=[QUERY]).
QUERY = Depends(_query)
ADMIN = Depends(_admin)
METRICS = Depends(_metrics)

"""No state-changing request from another site's page, whatever the auth mode.

A browser is a client too: any page it opens may send this server a form post or a
``fetch(..., {mode: "no-cors"})`` (a "simple" request: no preflight, so CORS never gets a say),
and on a loopback install with keys off that request is as good as the owner's own. Browsers
say where such a request comes from in two headers no page can set: ``Origin`` and
``Sec-Fetch-Site``. So every method but GET/HEAD/OPTIONS, on every route, is refused (403,
problem+json) when one of them names another site, unless the origin is listed in
``RAG_API__CORS_ORIGINS``. Same-origin is exact (scheme, host and port): another port of
localhost is the same *site* but another origin, with pages of its own, and is refused too.
Requests that carry neither header (curl, the openai client, ``rag docs``) are not from a
browser and pass; keys, when required, still decide what they may do.

Pure ASGI, like ``api/limits.py``: the refusal goes out before a byte of the body is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from rag_service.api.errors import domain_problem
from rag_service.errors import CrossSite
from rag_service.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of requests this server's own page (or the user, typing a URL) makes.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` as browsers serialise an origin: lower case, the scheme's
    default port left out (``HTTP://Example.com:80/path`` -> ``http://example.com``). A value
    that is no URL comes back as it was, lower-cased, and so matches nothing but itself."""
    raw = url.strip().lower()
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname, parts.port
    except ValueError:
        return raw
    if not parts.scheme or not host:
        return raw
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def is_cross_site(
    method: str,
    origin: str | None,
    fetch_site: str | None,
    own: Iterable[str],
    allowed: frozenset[str] | None,
) -> bool:
    """Whether a request must be refused as coming from another site's page.

    ``own``: this server's origins (the one the request was sent to, the public URL's);
    ``allowed``: the origins of ``RAG_API__CORS_ORIGINS``, ``None`` for any (``*``). All are
    compared as ``origin_of`` serialises them.
    """
    if method.upper() in SAFE_METHODS:
        return False
    if origin is not None and origin.strip().lower() == "null":
        # An opaque origin (a sandboxed frame, a file:// page, a cross-site redirect) names no
        # site that could be allowed: every such page on the web sends the same "null".
        return True
    if origin is not None and (allowed is None or origin_of(origin) in allowed):
        return False
    if fetch_site is not None:
        # The browser's own verdict; trusted over comparing Origin with the Host header, which a
        # proxy may rewrite (an https page behind a proxy reaches this server over http).
        return fetch_site.strip().lower() not in _OWN_FETCH_SITES
    if origin is not None:
        return origin_of(origin) not in {origin_of(o) for o in own}
    return False  # neither header: not a browser


def allowed_origins(settings: Settings) -> frozenset[str] | None:
    """The origins of ``RAG_API__CORS_ORIGINS``; ``None`` when it lists ``*`` (any)."""
    listed = settings.api.cors_origins
    if "*" in listed:
        return None
    return frozenset(origin_of(o) for o in listed)


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = allowed_origins(settings)
        public = settings.api.public_url
        self.public = (origin_of(public),) if public else ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _first_values(scope["headers"])
        origin, fetch_site, host = (headers.get(k) for k in (b"origin", b"sec-fetch-site", b"host"))
        own = (f"{scope['scheme']}://{host}", *self.public) if host else self.public
        if not is_cross_site(scope["method"], origin, fetch_site, own, self.allowed):
            await self.app(scope, receive, send)
            return
        header, value = ("Origin", origin) if origin is not None else ("Sec-Fetch-Site", fetch_site)
        error = CrossSite(
            f"a {scope['method']} from another site ({header}: {value!r:.100}) is refused: this "
            "server takes state-changing requests from browsers only from its own pages and the "
            "origins listed in RAG_API__CORS_ORIGINS"
        )
        await domain_problem(Request(scope), error)(scope, receive, send)


def _first_values(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The first value of each header (ASGI names are lower case)."""
    found: dict[bytes, str] = {}
    for key, value in headers:
        found.setdefault(key, value.decode("latin-1"))
    return found

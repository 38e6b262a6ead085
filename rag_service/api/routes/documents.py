"""The document view: a source's text with a cited span highlighted, what citation links open.

``GET /documents/{source}?start=&end=`` is an HTML page for people (a browser that follows a
link from a chat client); ``GET /v1/documents/{source}`` is the same as JSON for programs.

How the HTML view is authenticated: a browser following a link cannot send a Bearer header, so
where keys are required a citation link carries a token, ``<expiry>.<HMAC of collection,
source and expiry>`` under the API keys' secret, valid ``RAG_API__DOCUMENT_LINK_TTL_S`` (one day
by default). Whoever was allowed to ask may pass the link on for that long, like the quote it
backs, and for that one document of that collection only; a key in the headers works too.
Without keys (loopback), it is as open as the rest of the API. The JSON variant takes a key, as
every /v1 route does.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from rag_service.api.auth import QUERY, Gate, GateDep
from rag_service.api.deps import LibraryDep
from rag_service.api.schemas import CollectionQuery
from rag_service.collections import DEFAULT
from rag_service.documents import DocumentText, read_document
from rag_service.errors import BadRequest, Forbidden

router = APIRouter(tags=["documents"])

_PURPOSE = "document-link"

Offset = Annotated[int | None, Query(ge=0, le=2**31)]


# A token: the expiry (Unix seconds) and the signature's hex digest.
_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


def _signature(gate: Gate, collection: str, source: str, expires: int) -> str:
    # As a JSON array, no two (collection, source) pairs sign the same message: joined with a
    # "/", `handbook/faq.md` in `default` and `faq.md` in `handbook` did.
    message = json.dumps([collection, source, expires], ensure_ascii=False)
    return gate.keys.sign(_PURPOSE, message)


def citation_url(
    request: Request, source: str, start: int, end: int, collection: str = DEFAULT
) -> str:
    """An absolute link to the document view with ``start:end`` highlighted; signed when the
    server requires keys."""
    settings = request.app.state.settings
    gate: Gate = request.app.state.gate
    base = settings.api.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    params: dict[str, Any] = {"start": start, "end": end}
    if collection != DEFAULT:
        params["collection"] = collection
    if gate.required:
        expires = int(time.time()) + settings.api.document_link_ttl_s
        params["token"] = f"{expires}.{_signature(gate, collection, source, expires)}"
    return f"{base}/documents/{quote(source)}?{urlencode(params)}#quote"


def _admit_link(
    request: Request, gate: Gate, collection: str, source: str, token: str | None
) -> None:
    if not gate.required or token is None:
        gate.admit(request, "query")  # no key needed, or the caller sent one in the headers
        return
    parsed = _TOKEN.fullmatch(token)
    if parsed is None or not hmac.compare_digest(
        parsed[2], _signature(gate, collection, source, int(parsed[1]))
    ):
        raise Forbidden("this document link is not valid for this document")
    if int(parsed[1]) < time.time():
        raise Forbidden("this document link has expired; ask again for a fresh one")
    address = request.client.host if request.client else "unknown"
    gate.limiter.take(f"address:{address}")


def _span(document: DocumentText, start: int | None, end: int | None) -> tuple[int, int] | None:
    if start is None and end is None:
        return None
    if start is None or end is None or not start <= end <= len(document.text):
        raise BadRequest(f"start and end must satisfy 0 <= start <= end <= {len(document.text)}")
    return start, end


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:16px/1.6 system-ui,sans-serif;max-width:48rem;margin:0 auto;padding:1rem;
color:#1a1a1a;background:#fff}}
header{{border-bottom:1px solid #ccc;margin-bottom:1rem}}
h1{{font-size:1.3rem;margin:.2rem 0}} p.meta{{color:#555;margin:.2rem 0 .6rem}}
pre{{white-space:pre-wrap;word-wrap:break-word;font:inherit}}
mark{{background:#ffe066;color:#000;outline:2px solid #b38600;scroll-margin-top:30vh}}
@media (prefers-color-scheme:dark){{body{{background:#111;color:#eee}}p.meta{{color:#aaa}}}}
</style></head>
<body><header><h1>{title}</h1><p class="meta">{source} · generation {generation}</p></header>
<main><pre>{body}</pre></main></body></html>
"""


def _render(document: DocumentText, span: tuple[int, int] | None) -> str:
    text = document.text
    if span is None:
        body = html.escape(text.lstrip("\n"))
    else:
        start, end = span
        body = (
            html.escape(text[:start].lstrip("\n"))
            + f'<mark id="quote">{html.escape(text[start:end])}</mark>'
            + html.escape(text[end:])
        )
    return _PAGE.format(
        title=html.escape(document.title or document.source),
        source=html.escape(document.source),
        generation=document.generation,
        body=body,
    )


# No script runs on this page and nothing is loaded from elsewhere; the token in its address
# goes nowhere (no Referer).
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


@router.get("/documents/{source:path}", response_class=HTMLResponse)
def document_page(
    request: Request,
    source: str,
    library: LibraryDep,
    gate: GateDep,
    start: Offset = None,
    end: Offset = None,
    token: Annotated[str | None, Query(max_length=200)] = None,
    collection: CollectionQuery = DEFAULT,
) -> HTMLResponse:
    _admit_link(request, gate, collection, source, token)
    document = read_document(library.search(collection), source)
    return HTMLResponse(_render(document, _span(document, start, end)), headers=_HEADERS)


@router.get("/v1/documents/{source:path}", dependencies=[QUERY])
def document_json(
    source: str,
    library: LibraryDep,
    start: Offset = None,
    end: Offset = None,
    collection: CollectionQuery = DEFAULT,
) -> dict[str, Any]:
    """The document's text; with ``start`` and ``end``, also the ``quote`` they span."""
    document = read_document(library.search(collection), source)
    span = _span(document, start, end)
    return {
        "source": document.source,
        "title": document.title,
        "generation": document.generation,
        "text": document.text,
        "start": span[0] if span else None,
        "end": span[1] if span else None,
        "quote": document.text[span[0] : span[1]] if span else None,
    }

"""Which browser requests are another site's: the decision of api/cross_site.py, case by case."""

from __future__ import annotations

import pytest

from rag_service.api.cross_site import allowed_origins, is_cross_site, origin_of
from rag_service.settings import Settings

pytestmark = pytest.mark.unit

OWN = ("http://127.0.0.1:8000",)
ALLOWED = frozenset({"https://app.example"})


@pytest.mark.parametrize(
    ("method", "origin", "fetch_site", "refused"),
    [
        # Not a browser (curl, the openai client, `rag docs`): nothing to judge by.
        ("POST", None, None, False),
        ("DELETE", None, None, False),
        # The service's own page.
        ("POST", "http://127.0.0.1:8000", "same-origin", False),
        ("PUT", "http://127.0.0.1:8000", None, False),  # a browser without Sec-Fetch-*
        ("DELETE", None, "same-origin", False),
        ("POST", None, "none", False),  # the user's own navigation
        # Another site's page: a form post, a no-cors fetch.
        ("POST", "http://evil.example", "cross-site", True),
        ("POST", "http://evil.example", None, True),
        ("PUT", None, "cross-site", True),
        ("POST", "http://127.0.0.2:8000", "cross-site", True),
        # Another port of the same host is the same site but another origin: refused.
        ("POST", "http://127.0.0.1:9999", "same-site", True),
        ("POST", "http://127.0.0.1:9999", None, True),
        ("DELETE", None, "same-site", True),
        ("POST", "https://127.0.0.1:8000", None, True),  # another scheme
        # Opaque origins (sandboxed frames, file:// pages, cross-site redirects).
        ("POST", "null", "cross-site", True),
        ("POST", "null", None, True),
        ("POST", "null", "same-origin", True),
        ("POST", "not an origin", None, True),
        # Listed in RAG_API__CORS_ORIGINS: allowed, however the browser files it.
        ("POST", "https://app.example", "cross-site", False),
        ("DELETE", "https://APP.example:443", "cross-site", False),
        ("POST", "https://app.example:8443", "cross-site", True),
        # Safe methods change nothing and are never refused here.
        ("GET", "http://evil.example", "cross-site", False),
        ("HEAD", "null", "cross-site", False),
        ("OPTIONS", "http://evil.example", "cross-site", False),
        # Every other method is state-changing, whatever its name.
        ("PATCH", "http://evil.example", "cross-site", True),
        ("post", "http://evil.example", "cross-site", True),
    ],
)
def test_the_decision(
    method: str, origin: str | None, fetch_site: str | None, refused: bool
) -> None:
    assert is_cross_site(method, origin, fetch_site, OWN, ALLOWED) is refused


def test_behind_a_proxy_the_public_url_is_this_server_too() -> None:
    # The proxy speaks http to the server; the page was https. Without Sec-Fetch-Site (an older
    # browser) only the public URL tells that they are one origin.
    own = ("http://rag.example.com", origin_of("https://rag.example.com/rag/"))
    assert not is_cross_site("POST", "https://rag.example.com", None, own, frozenset())
    assert is_cross_site("POST", "https://other.example.com", None, own, frozenset())
    # A modern browser says so itself.
    assert not is_cross_site("POST", "https://rag.example.com", "same-origin", OWN, frozenset())


def test_a_wildcard_allows_every_origin_but_null() -> None:
    assert not is_cross_site("POST", "http://evil.example", "cross-site", OWN, None)
    assert is_cross_site("POST", "null", "cross-site", OWN, None)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("HTTP://Example.COM:80/path?q", "http://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:8443/", "https://example.com:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("http://[::1]", "http://[::1]"),
        ("null", "null"),
        ("http://example.com:99999", "http://example.com:99999"),  # no port: left as it was
    ],
)
def test_origins_are_compared_as_browsers_serialise_them(url: str, origin: str) -> None:
    assert origin_of(url) == origin


def test_the_allowed_origins_come_from_the_cors_setting() -> None:
    listed = Settings(_env_file=None, api={"cors_origins": ["https://App.example:443"]})  # type: ignore[call-arg]
    assert allowed_origins(listed) == frozenset({"https://app.example"})
    wildcard = Settings(_env_file=None, api={"cors_origins": ["*"]})  # type: ignore[call-arg]
    assert allowed_origins(wildcard) is None
    assert allowed_origins(Settings(_env_file=None)) == frozenset()  # type: ignore[call-arg]

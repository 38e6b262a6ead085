"""Where the CLI looks for a running server: RAG_URL, else the address `rag serve` binds with
the same settings, reached on loopback when it binds every address."""

from __future__ import annotations

import pytest

from rag_cli.remote import configured_url
from rag_service.settings import ApiSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8000, "http://127.0.0.1:8000"),
        ("0.0.0.0", 8080, "http://127.0.0.1:8080"),
        ("::", 9000, "http://[::1]:9000"),
        ("::1", 8000, "http://[::1]:8000"),
        ("localhost", 8000, "http://localhost:8000"),
    ],
)
def test_the_configured_address_is_where_the_cli_looks(
    host: str, port: int, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_URL", raising=False)
    assert configured_url(ApiSettings(host=host, port=port)) == url


def test_rag_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_URL", "https://rag.example.org/")
    assert configured_url(ApiSettings(port=9999)) == "https://rag.example.org"

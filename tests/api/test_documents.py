"""The document view over a real server: the quote highlighted at the citation's offsets, the
text HTML-escaped, and no path that leaves the served index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag_service.documents import _stitch
from tests.servers import api_server

pytestmark = pytest.mark.api


@pytest.fixture(scope="module")
def url(indexed_docs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server(tmp_path_factory.mktemp("docs"), indexed_docs) as base:
        yield base


@pytest.mark.unit
def test_stitching_overlapping_chunks_keeps_offsets() -> None:
    text = "# T\n\nfirst part. second part.\n\nthird"
    pieces = [(5, text[5:23]), (17, text[17:28]), (30, text[30:])]
    stitched = _stitch(pieces)
    assert len(stitched) == len(text)
    assert all(stitched[s : s + len(t)] == t for s, t in pieces)


def test_the_cited_span_is_marked_and_matches_the_citation(url: str) -> None:
    answer = httpx.post(f"{url}/v1/ask", json={"question": "向量数据库用什么算法检索？"}).json()
    citation = answer["citations"][0]
    span = {"start": citation["start"], "end": citation["end"]}
    doc = httpx.get(f"{url}/v1/documents/{citation['source']}", params=span).json()
    assert doc["quote"] == citation["quote"] == doc["text"][span["start"] : span["end"]]
    page = httpx.get(f"{url}/documents/{citation['source']}", params=span)
    assert page.status_code == 200 and "script" not in page.headers["content-security-policy"]
    assert f'<mark id="quote">{citation["quote"]}</mark>' in page.text


def test_hostile_sources_and_spans_are_refused(url: str, tmp_path: Path) -> None:
    for path in ("..%2f..%2fetc%2fpasswd", "%2e%2e/x", "guides/%2e/moe.html", "a%00b", "a%5cb"):
        response = httpx.get(f"{url}/documents/{path}")
        assert response.status_code == 400, path
        assert "passwd" not in response.text or "root:" not in response.text
    assert httpx.get(f"{url}/documents/%2Fetc%2Fpasswd").status_code == 400
    assert httpx.get(f"{url}/documents/not-indexed.md").status_code == 404
    assert (
        httpx.get(f"{url}/v1/documents/attention.md", params={"start": 9, "end": 2}).status_code
        == 400
    )
    assert httpx.get(f"{url}/v1/documents/attention.md", params={"start": 0}).status_code == 400
    assert (
        httpx.get(f"{url}/v1/documents/attention.md", params={"start": 0, "end": 10**9}).status_code
        == 400
    )


def test_the_page_and_its_files_are_served(url: str) -> None:
    page = httpx.get(f"{url}/")
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert httpx.get(f"{url}/static/app.js").status_code == 200
    assert httpx.get(f"{url}/static/%2e%2e/api/app.py").status_code == 404

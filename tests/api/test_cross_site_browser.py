"""A hostile page in a real Chromium cannot write into the service: served from a second loopback
origin (another port of 127.0.0.1: same site, other origin; and 127.0.0.2: another site), it
auto-submits a multipart form and sends no-cors fetches (requests that need no preflight) to the
document routes of the mirrored default and of a managed collection. The server refuses each one
(its log says 403) and the files and the index stay as they were, with mirrored writes switched
on, so only the cross-site guard stands in the way; the service's own page still uploads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_collections import accepted, digests, wait_job
from tests.browser import create_collection
from tests.browser import wait_job as wait_page_job
from tests.servers import api_server, http_server

pytestmark = [pytest.mark.api, pytest.mark.slow]

HOSTILE = """<!doctype html>
<title>hostile</title>
<iframe name="sink"></iframe>
<form method="post" enctype="multipart/form-data" target="sink"
      action="API/v1/collections/default/documents">
  <input type="file" name="files">
</form>
<script>
const api = "API";
const text = "# Replaced\\n\\nWritten by another site's page.\\n";
async function attack() {
  const form = document.querySelector("form");
  const picked = new DataTransfer();
  picked.items.add(new File([text], "attention.md", { type: "text/markdown" }));
  form.elements.files.files = picked.files;
  const answered = new Promise((done) =>
    document.querySelector("iframe").addEventListener("load", done, { once: true }));
  form.submit();
  await answered;
  for (const [collection, name] of [["default", "attention.md"], ["kept", "kept.md"]]) {
    const body = new FormData();
    body.append("files", new Blob([text], { type: "text/markdown" }), name);
    await fetch(`${api}/v1/collections/${collection}/documents`,
                { method: "POST", mode: "no-cors", body });
  }
}
attack().then(() => { document.title = "sent"; },
              (error) => { document.title = "failed: " + error; });
</script>
"""
# What the page sends: the form, then a fetch to each collection.
ATTACKS = [
    "/v1/collections/default/documents",
    "/v1/collections/default/documents",
    "/v1/collections/kept/documents",
]


@pytest.fixture(scope="module")
def service(
    indexed_docs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The service, with mirrored writes on; its URL and its log (JSON lines)."""
    root = tmp_path_factory.mktemp("cross-site-browser")
    log = root / "api.log"
    env = {**indexed_docs, "RAG_API__WRITE_MIRRORED": "true"}
    with api_server(root, env, log=log) as url:
        httpx.put(f"{url}/v1/collections/kept").raise_for_status()
        job = httpx.put(
            f"{url}/v1/collections/kept/documents/kept.md", content=b"# Kept\n\nAs it was.\n"
        )
        assert wait_job(url, accepted(job))["state"] == "done"
        yield url, log


@pytest.fixture
def hostile_site(request: pytest.FixtureRequest, service: tuple[str, Path]) -> Iterator[str]:
    """A tiny web server on another loopback origin, serving the hostile page; its URL."""
    page = HOSTILE.replace("API", service[0]).encode()

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Hostile, request.param) as origin:
        yield origin + "/"


def _document_posts(log: Path) -> list[tuple[str, int]]:
    """(path, status) of every document upload the server has logged."""
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        (e["path"], e["status"])
        for e in entries
        if e.get("logger") == "rag_service.access"
        and e.get("method") == "POST"
        and e["path"].endswith("/documents")
    ]


def _posts_after(log: Path, seen: int, count: int) -> list[tuple[str, int]]:
    """The ``count`` uploads logged after the first ``seen``: the access log line is written as
    the response goes out, so it may trail the page by a moment."""
    deadline = time.monotonic() + 10
    while len(posts := _document_posts(log)) < seen + count and time.monotonic() < deadline:
        time.sleep(0.1)
    return posts[seen:]


@pytest.mark.parametrize(
    "hostile_site",
    ["127.0.0.1", "127.0.0.2"],  # another port: same site, another origin; another site
    indirect=True,
)
def test_a_hostile_page_cannot_write_and_the_own_page_still_can(
    browser: Any,
    service: tuple[str, Path],
    hostile_site: str,
    indexed_docs: dict[str, str],
    tmp_path: Path,
) -> None:
    url, log = service
    docs = Path(indexed_docs["RAG_CORPUS_DIR"])
    before = digests(docs)
    listed_before = httpx.get(f"{url}/v1/collections/kept/documents").json()
    seen = len(_document_posts(log))

    page = browser.new_page()
    page.goto(hostile_site)
    page.wait_for_function("document.title !== 'hostile'")
    assert page.title() == "sent"  # every request went out
    page.close()

    assert _posts_after(log, seen, len(ATTACKS)) == [(path, 403) for path in ATTACKS]
    assert digests(docs) == before
    assert httpx.get(f"{url}/v1/collections/kept/documents").json() == listed_before

    own = browser.new_page(locale="en-US")
    own.on("dialog", lambda dialog: dialog.accept())
    own.goto(url)
    name = f"own-{hostile_site.split(':')[1].strip('/').replace('.', '-')}"
    create_collection(own, name)
    upload = tmp_path / "owls.md"
    upload.write_text("# Owls\n\nOwls hunt mice at night over the meadow.\n", encoding="utf-8")
    own.get_by_label("Files to upload").set_input_files([str(upload)])
    assert "1 added" in wait_page_job(own, "Done")
    own.close()

"""Another site's page may not change anything, keys on or off: every state-changing route of the
app (enumerated from it, so a new route cannot escape), asked with a foreign Origin or
Sec-Fetch-Site, answers 403 and leaves documents, collections, jobs and keys as they were; the
server's own origin, the origins of RAG_API__CORS_ORIGINS and non-browser clients still write.
Mirrored writes are switched on here, so only the cross-site guard stands in the way."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

from ingest.reindex import FolderIndexer
from rag_service.api.app import create_app
from rag_service.api.cross_site import SAFE_METHODS
from rag_service.collections import Collections
from rag_service.settings import Settings
from tests.api.test_auth import bearer, rag
from tests.api.test_collections import accepted, wait_job
from tests.api.test_http import assert_problem
from tests.servers import api_server

pytestmark = pytest.mark.api

ALLOWED = "https://app.example"
# The URL pages reach the server by, behind a proxy that does not pass the scheme or the port on.
PUBLIC = "https://rag.example.com:8443/rag"
REPLACED = b"# Replaced\n\nWritten by another site's page.\n"


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]  # an admin key when keys are required: only the origin is wrong
    env: dict[str, str]
    job_id: str  # a finished job of the managed collection


@pytest.fixture(scope="module", params=["off", "required"])
def target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    indexed_docs: dict[str, str],
) -> Iterator[Target]:
    env = {
        **indexed_docs,
        "RAG_API__AUTH": request.param,
        "RAG_API__WRITE_MIRRORED": "true",
        "RAG_API__CORS_ORIGINS": f'["{ALLOWED}"]',
        "RAG_API__PUBLIC_URL": PUBLIC,
    }
    headers = {}
    if request.param == "required":
        made = rag("keys", "create", "--name", f"ops-{request.param}", "--scope", "admin", env=env)
        headers = bearer(made.stdout.strip())
    with api_server(tmp_path_factory.mktemp(f"cross-site-{request.param}"), env) as url:
        httpx.put(f"{url}/v1/collections/kept", headers=headers).raise_for_status()
        job = httpx.put(
            f"{url}/v1/collections/kept/documents/kept.md",
            content=b"# Kept\n\nThe kept document stays as it was.\n",
            headers=headers,
        )
        done = wait_job(url, accepted(job), headers=headers)
        assert done["state"] == "done", done
        yield Target(url, headers, env, done["id"])


# (collection, document) pairs a path's parameters are filled with: the mirrored default and a
# managed collection, each with a document that exists, and a collection a PUT would make.
TARGETS = [("default", "attention.md"), ("kept", "kept.md"), ("made-elsewhere", "new.md")]
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _paths(template: str, job_id: str) -> list[str]:
    def filled(collection: str, document: str) -> str:
        values = {"name": collection, "path": document, "source": document, "job_id": job_id}
        return _PARAM.sub(lambda m: values.get(m[1], "x"), template)

    return sorted({filled(c, d) for c, d in TARGETS})


def state_changing_requests(job_id: str) -> list[tuple[str, str]]:
    """(method, path) of every method but GET/HEAD/OPTIONS on every route of the app, with
    real collections, documents and jobs as its parameters; the static files, and a path no
    route has, too."""
    app = create_app(Settings(_env_file=None), FolderIndexer)  # type: ignore[call-arg]
    found: set[tuple[str, str]] = {("POST", "/no-such-route"), ("DELETE", "/no-such-route")}
    for route in app.routes:
        if isinstance(route, Mount):
            found |= {(m, f"{route.path}/app.js") for m in ("POST", "PUT", "DELETE")}
            continue
        # FastAPI keeps an included router whole; its routes are its effective routes.
        expand = getattr(route, "effective_route_contexts", None)
        for each in expand() if expand else [route]:
            for method in getattr(each, "methods", None) or ():
                if method not in SAFE_METHODS:
                    found |= {(method, p) for p in _paths(each.path, job_id)}
    return sorted(found)


def _body(method: str, path: str) -> dict[str, Any]:
    """What the route would act on, were it not refused: a replacement of the document."""
    if method == "POST" and path.endswith("/documents"):
        document = "kept.md" if "/kept/" in path else "attention.md"
        return {"files": [("files", (document, REPLACED))]}
    if method == "PUT" and "/documents/" in path:
        return {"content": REPLACED}
    return {"json": {"question": "What is attention?", "query": "attention"}}


def _snapshot(target: Target) -> dict[str, Any]:
    """Everything a write could change: the files of both collections' folders, what the API
    lists, the jobs on disk, the keys."""
    settings = Settings(_env_file=None, data_dir=Path(target.env["RAG_DATA_DIR"]))  # type: ignore[call-arg]
    collections = Collections(settings.data_dir, Path(target.env["RAG_CORPUS_DIR"]))
    files = {}
    for name in ("default", "kept"):
        folder = collections.get(name).folder
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                files[f"{name}/{file.relative_to(folder)}"] = hashlib.sha256(
                    file.read_bytes()
                ).hexdigest()
    api = {
        path: httpx.get(f"{target.url}{path}", headers=target.headers).json()
        for path in (
            "/v1/collections",
            "/v1/collections/default/documents",
            "/v1/collections/kept/documents",
        )
    }
    keys = httpx.get(f"{target.url}/v1/keys", headers=target.headers).json()
    jobs = sorted(p.name for p in (settings.data_dir / "jobs").glob("*.json"))
    return {
        "files": files,
        "api": api,
        "jobs": jobs,
        "keys": [k["name"] for k in keys],
    }


@pytest.mark.parametrize(
    "foreign",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},  # a browser without Sec-Fetch-*
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},  # another port
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame, a file:// page
    ],
)
def test_every_state_changing_route_refuses_another_site(
    target: Target, foreign: dict[str, str]
) -> None:
    requests = state_changing_requests(target.job_id)
    assert ("POST", "/v1/collections/default/documents") in requests
    assert ("DELETE", "/v1/collections/kept") in requests
    before = _snapshot(target)
    for method, path in requests:
        response = httpx.request(
            method,
            f"{target.url}{path}",
            headers={**target.headers, **foreign},
            **_body(method, path),
        )
        body = assert_problem(response, 403)
        assert body["type"] == "urn:rag-service:problem:cross-site", (method, path, body)
        assert "RAG_API__CORS_ORIGINS" in body["detail"]
        assert "access-control-allow-origin" not in response.headers
    assert _snapshot(target) == before


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("same-origin", {"Sec-Fetch-Site": "same-origin"}),  # Origin added below
        ("listed", {"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"}),
        ("not-a-browser", {}),
        # The page behind the proxy, in a browser that sends no Sec-Fetch-Site.
        ("public-url", {"Origin": "https://rag.example.com:8443"}),
    ],
)
def test_own_pages_listed_origins_and_other_clients_still_write(
    target: Target, name: str, headers: dict[str, str]
) -> None:
    if name == "same-origin":
        headers = {**headers, "Origin": target.url}
    sent = {**target.headers, **headers}
    response = httpx.put(
        f"{target.url}/v1/collections/kept/documents/{name}.md",
        content=f"# {name}\n\nWritten by a {name} caller.\n".encode(),
        headers=sent,
    )
    assert wait_job(target.url, accepted(response), headers=target.headers)["state"] == "done"
    if name == "listed":
        assert response.headers["access-control-allow-origin"] == ALLOWED
    gone = httpx.delete(f"{target.url}/v1/collections/kept/documents/{name}.md", headers=sent)
    assert wait_job(target.url, accepted(gone), headers=target.headers)["result"]["deleted"] == 1

"""Collections and documents over HTTP against a real `rag serve` (real embedder, real Chroma):
create, upload, ask, re-upload, replace, delete, with the default collection untouched; bounds
and hostile paths; a job waiting for a CLI reindex; a server killed mid-job."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.reindex import reindex
from rag_service.collections import Collections
from rag_service.settings import Settings
from rag_service.stores import open_store
from tests.api.test_http import assert_problem
from tests.conftest import DATA
from tests.servers import api_process, api_server

pytestmark = pytest.mark.api

FALCON = (
    "# Falcons\n\nThe peregrine falcon reaches 389 kilometres per hour in its hunting dive, "
    "the fastest speed of any animal.\n"
)
FALCON_V2 = (
    "# Falcons\n\nThe gyrfalcon is the largest falcon and nests on Arctic cliffs above the "
    "tundra.\n"
)
TEA_GBK = "乌龙茶产于福建武夷山，是一种半发酵的茶，香气浓郁，回味甘甜。".encode("gb18030")


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Lighthouses", level=1)
    document.add_paragraph("The Bell Rock lighthouse was finished in 1810 by Robert Stevenson.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def wait_job(
    url: str, job: dict[str, Any], timeout_s: float = 120, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=headers).json()
    return job


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return job


def sources(url: str, query: str, collection: str = "default") -> list[str]:
    response = httpx.post(
        f"{url}/v1/search", json={"query": query, "top_k": 5, "collection": collection}
    )
    assert response.status_code == 200, response.text
    return [p["source"] for p in response.json()["passages"]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]) -> Iterator[str]:
    with api_server(tmp_path_factory.mktemp("collections"), indexed_docs) as url:
        yield url


def test_a_collection_lives_its_whole_life_over_http(
    server: str, indexed_docs: dict[str, str]
) -> None:
    url = server
    default_before = httpx.get(f"{url}/v1/collections/default/documents").json()
    created = httpx.put(f"{url}/v1/collections/birds")
    assert created.status_code == 201 and created.json()["kind"] == "managed"
    assert httpx.put(f"{url}/v1/collections/birds").status_code == 200  # idempotent
    assert sources(url, "falcon", "birds") == []  # a new collection is empty, not "not ready"

    files = [
        ("files", ("falcon.md", FALCON.encode())),
        ("files", ("tea.txt", TEA_GBK)),
        ("files", ("notes/lighthouse.docx", _docx())),
    ]
    job = wait_job(url, accepted(httpx.post(f"{url}/v1/collections/birds/documents", files=files)))
    assert job["state"] == "done", job
    assert job["result"]["added"] == 3 and job["result"]["failed"] == []

    listed = {
        d["path"]: d for d in httpx.get(f"{url}/v1/collections/birds/documents").json()["documents"]
    }
    assert set(listed) == {"falcon.md", "tea.txt", "notes/lighthouse.docx"}
    assert listed["tea.txt"]["encoding"] == "gb18030" and listed["tea.txt"]["chunks"] >= 1
    assert listed["falcon.md"]["bytes"] == len(FALCON.encode())

    # Only one file answers; the answer cites it; the default collection does not hold it.
    answer = httpx.post(
        f"{url}/v1/ask",
        json={
            "question": "What speed does the peregrine falcon reach in its dive?",
            "collection": "birds",
        },
    ).json()
    assert answer["answerable"], answer
    assert {c["source"] for c in answer["citations"]} == {"falcon.md"}
    assert sources(url, "乌龙茶产于哪里", "birds")[0] == "tea.txt"
    assert sources(url, "Bell Rock lighthouse Stevenson", "birds")[0] == "notes/lighthouse.docx"
    assert "falcon.md" not in sources(url, "peregrine falcon dive speed")
    text = httpx.get(f"{url}/v1/collections/birds/documents/tea.txt").json()
    assert "武夷山" in text["text"] and text["encoding"] == "gb18030"

    # The same bytes again: nothing embedded.
    same = wait_job(
        url, accepted(httpx.put(f"{url}/v1/collections/birds/documents/falcon.md", content=FALCON))
    )
    assert same["state"] == "done"
    assert same["result"]["chunks"]["embedded"] == 0 and same["result"]["unchanged"] == 3

    # New bytes under the same path replace the old chunks.
    replaced = wait_job(
        url,
        accepted(httpx.put(f"{url}/v1/collections/birds/documents/falcon.md", content=FALCON_V2)),
    )
    assert replaced["result"]["updated"] == 1
    passages = httpx.post(
        f"{url}/v1/search",
        json={"query": "peregrine 389 kilometres", "top_k": 10, "collection": "birds"},
    ).json()["passages"]
    assert all("389" not in p["text"] for p in passages)
    assert sources(url, "largest falcon Arctic cliffs", "birds")[0] == "falcon.md"

    # Deleted: no passage from it, and its ids leave Chroma (retired now, purged by the next
    # generation, as readers of the previous one may still hold them).
    gone = wait_job(url, accepted(httpx.delete(f"{url}/v1/collections/birds/documents/falcon.md")))
    assert gone["state"] == "done" and gone["result"]["deleted"] == 1
    assert "falcon.md" not in sources(url, "largest falcon Arctic cliffs", "birds")
    assert_problem(httpx.get(f"{url}/v1/collections/birds/documents/falcon.md"), 404)
    wait_job(
        url,
        accepted(
            httpx.put(f"{url}/v1/collections/birds/documents/more.md", content=b"# More\n\nowls")
        ),
    )
    settings = Settings(_env_file=None, data_dir=indexed_docs["RAG_DATA_DIR"])  # type: ignore[call-arg]
    state = Collections(settings.data_dir, settings.corpus_dir).get("birds").state
    pointer = state.current()
    assert pointer is not None
    store = open_store(settings, pointer.collection)
    try:
        stored = store._collection.get(include=["metadatas"])  # type: ignore[attr-defined]
    finally:
        store.close()
    by_source: dict[str, int] = {}
    for meta in stored["metadatas"]:
        by_source[meta["source"]] = by_source.get(meta["source"], 0) + 1
    assert "falcon.md" not in by_source
    assert (
        sum(by_source.values())
        == pointer.chunks
        == sum(len(e.chunk_ids) for e in state.manifest(pointer).values())
    )

    # Through all of it, the default collection did not change.
    assert httpx.get(f"{url}/v1/collections/default/documents").json() == default_before
    models = {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
    assert {"rag", "rag/birds"} <= models

    assert httpx.delete(f"{url}/v1/collections/birds").status_code == 204
    assert_problem(httpx.get(f"{url}/v1/collections/birds/documents"), 404)
    assert_problem(
        httpx.post(f"{url}/v1/search", json={"query": "owls", "collection": "birds"}), 404
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("%2E%2E/escape.md", 400),
        ("a/%2E%2E/%2E%2E/escape.md", 400),
        (".hidden.md", 400),
        ("notes/.git/config.md", 400),
        ("program.exe", 400),
        ("a%00b.md", 400),
    ],
)
def test_paths_that_could_escape_or_hide_are_refused(server: str, path: str, status: int) -> None:
    httpx.put(f"{server}/v1/collections/paths")
    response = httpx.put(f"{server}/v1/collections/paths/documents/{path}", content=b"# x\n\ny")
    assert_problem(response, status)


def test_bounds_on_uploads(server: str) -> None:
    httpx.put(f"{server}/v1/collections/bounds")
    base = f"{server}/v1/collections/bounds/documents"
    # Declared too large: refused before a byte of the body is sent.
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            f"PUT /v1/collections/bounds/documents/big.md HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {10**12}\r\n\r\n".encode()
        )
        head = raw.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413") and "application/problem+json" in head, head

    def chunked() -> Iterator[bytes]:
        yield b"# streamed\n\nwithout a length"

    assert_problem(httpx.put(f"{base}/chunked.md", content=chunked()), 411)
    assert_problem(httpx.put(f"{server}/v1/collections/missing/documents/a.md", content=b"x"), 404)
    assert_problem(httpx.put(f"{server}/v1/collections/not%E2%80%AEvalid"), 422)
    assert_problem(httpx.delete(f"{server}/v1/collections/default"), 400)
    assert_problem(httpx.delete(f"{base}/never-there.md"), 404)
    twice = [("files", ("a.md", b"# a\n\none")), ("files", ("a.md", b"# a\n\ntwo"))]
    assert_problem(httpx.post(base, files=twice), 400)
    assert_problem(httpx.post(base, data={"note": "no file"}), 400)


def test_a_file_that_cannot_be_read_fails_its_job_with_the_reason(server: str) -> None:
    httpx.put(f"{server}/v1/collections/broken")
    base = f"{server}/v1/collections/broken/documents"
    job = wait_job(server, accepted(httpx.put(f"{base}/report.docx", content=b"not a zip")))
    assert job["state"] == "failed" and "report.docx" in job["error"]
    listed = httpx.get(base).json()["documents"]
    assert [(d["path"], d["chunks"], bool(d["error"])) for d in listed] == [
        ("report.docx", 0, True)
    ]
    good = wait_job(server, accepted(httpx.put(f"{base}/fine.md", content=b"# Fine\n\nok text")))
    assert good["state"] == "done"  # the broken file does not fail others' jobs


def test_a_job_waits_for_a_cli_reindex_of_its_collection(
    server: str, indexed_docs: dict[str, str]
) -> None:
    httpx.put(f"{server}/v1/collections/waiting")
    settings = Settings(_env_file=None, data_dir=indexed_docs["RAG_DATA_DIR"])  # type: ignore[call-arg]
    state = Collections(settings.data_dir, settings.corpus_dir).get("waiting").state
    with state.reindex_lock():  # what `rag reindex --collection waiting` holds while it runs
        job = accepted(
            httpx.put(f"{server}/v1/collections/waiting/documents/a.md", content=b"# A\n\nalpha")
        )
        deadline = time.monotonic() + 30
        while job["waiting"] is None:
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = httpx.get(f"{server}/v1/jobs/{job['id']}").json()
        assert job["state"] == "running"
    assert wait_job(server, job)["state"] == "done"


def test_a_server_killed_mid_job_resumes_it_and_never_stops_serving(
    tmp_path: Path, indexed_docs: dict[str, str]
) -> None:
    env = {**indexed_docs, "RAG_DATA_DIR": str(tmp_path / "data")}
    long_text = "\n\n".join(
        f"Paragraph {i} tells of harbour number {i} and the ships that sailed from it at dawn."
        for i in range(1500)
    )
    with api_process(tmp_path, env) as (url, proc):
        httpx.put(f"{url}/v1/collections/ports")
        base = f"{url}/v1/collections/ports/documents"
        first = wait_job(url, accepted(httpx.put(f"{base}/first.md", content=b"# First\n\nowls")))
        committed = first["result"]["generation"]
        job = accepted(httpx.put(f"{base}/long.md", content=long_text.encode()))
        deadline = time.monotonic() + 120
        while not job["progress"]:  # embedding has begun
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
            job = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    pointer = Collections(settings.data_dir, settings.corpus_dir).get("ports").state.current()
    assert pointer is not None and pointer.generation == committed  # the previous one stands

    with api_process(tmp_path, env) as (url, _):
        assert sources(url, "owls", "ports") == ["first.md"]  # served at once after the restart
        resumed = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
        assert resumed["resumed"] == 1 and resumed["state"] in ("queued", "running", "done")
        done = wait_job(url, resumed, timeout_s=300)
        assert done["state"] == "done" and done["result"]["generation"] == committed + 1
        assert sources(url, "harbour number 7 ships at dawn", "ports")[0] == "long.md"


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder``, hidden ones too, by its bytes' hash."""
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def test_a_mirrored_folder_is_not_written_over_http_by_default(
    server: str, indexed_docs: dict[str, str]
) -> None:
    """`default` mirrors the user's own folder (the repository's corpus/ on a fresh clone)."""
    listed = httpx.get(f"{server}/v1/collections").json()["collections"]
    default = next(c for c in listed if c["name"] == "default")
    assert default["kind"] == "mirrored" and default["writable"] is False
    assert len(default["examples"]) == 2  # the page's example questions (RAG_API__EXAMPLE_...)
    made = httpx.put(f"{server}/v1/collections/uploads")
    assert made.json()["kind"] == "managed" and made.json()["writable"] is True
    assert made.json()["examples"] == []

    docs = Path(indexed_docs["RAG_CORPUS_DIR"])
    before = digests(docs)
    base = f"{server}/v1/collections/default/documents"
    for response in (
        httpx.put(f"{base}/attention.md", content=b"# Replaced\n\nover HTTP"),
        httpx.put(f"{base}/new.md", content=b"# New\n\nover HTTP"),
        httpx.post(base, files=[("files", ("attention.md", b"# Replaced\n\nover HTTP"))]),
        httpx.delete(f"{base}/attention.md"),
    ):
        assert "RAG_API__WRITE_MIRRORED" in assert_problem(response, 403)["detail"]
    assert digests(docs) == before


def test_with_write_mirrored_a_mirrored_folder_is_written_and_only_its_documents_deleted(
    tmp_path: Path, real_embedder: Any
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DATA / "docs", docs)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", corpus_dir=docs)  # type: ignore[call-arg]
    reindex(settings, embedder=real_embedder)
    # What a user's folder holds beside its documents; draft.md is one, not indexed yet.
    others = {
        ".env": "OPENAI_API_KEY=sk-secret\n",
        ".git/config": "[core]\n\trepositoryformatversion = 0\n",
        "notes.py": "print('mine')\n",
        "QUESTIONS.jsonl": '{"q": "mine"}\n',
        "draft.md": "# Draft\n\nNot indexed yet.\n",
    }
    for name, text in others.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    kept = {name: digests(docs)[name] for name in others}
    env = {
        "RAG_DATA_DIR": str(settings.data_dir),
        "RAG_CORPUS_DIR": str(docs),
        "RAG_API__WRITE_MIRRORED": "true",
    }
    with api_server(tmp_path, env) as url:
        listed = httpx.get(f"{url}/v1/collections").json()["collections"]
        assert next(c for c in listed if c["name"] == "default")["writable"] is True
        base = f"{url}/v1/collections/default/documents"
        # Hidden, of a format the collection does not index, a folder, a file it has not
        # indexed: no document of the collection.
        for path in (".env", ".git/config", "notes.py", "QUESTIONS.jsonl", "guides", "draft.md"):
            assert_problem(httpx.delete(f"{base}/{path}"), 404)
        assert_problem(httpx.delete(f"{base}/guides/%2E%2E/%2E%2E/outside.md"), 400)
        assert_problem(httpx.put(f"{base}/notes.py", content=b"print('theirs')"), 400)
        assert {name: digests(docs).get(name) for name in others} == kept

        put = wait_job(url, accepted(httpx.put(f"{base}/new.md", content=b"# New\n\nFresh.")))
        assert put["state"] == "done" and (docs / "new.md").read_bytes() == b"# New\n\nFresh."
        assert put["result"]["added"] == 2  # new.md, and draft.md the reindex found beside it
        gone = wait_job(url, accepted(httpx.delete(f"{base}/attention.md")))
        assert gone["state"] == "done" and gone["result"]["deleted"] == 1, gone
        assert not (docs / "attention.md").exists()

        # A document that failed to index is listed, so it can be deleted, and that counts.
        broken = wait_job(url, accepted(httpx.put(f"{base}/broken.docx", content=b"not a zip")))
        assert broken["state"] == "failed"
        gone = wait_job(url, accepted(httpx.delete(f"{base}/broken.docx")))
        assert gone["state"] == "done" and gone["result"]["deleted"] == 1, gone
        assert not (docs / "broken.docx").exists()
        assert {name: digests(docs).get(name) for name in others} == kept

"""Document jobs over HTTP against a real `rag serve` (real embedder, real Chroma): cancelling a
queued and a running job (the served generation stands, the folder is put back, a restart does
not resume it), a collection delete that cancels its jobs, the per-file chunk cap, and one
collection's small job finishing while another's large one runs. Orderings and states only: no
assertion here depends on how fast the machine is."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag_service.collections import Collections
from rag_service.settings import Settings
from tests.api.test_collections import accepted, sources, wait_job
from tests.api.test_http import assert_problem
from tests.servers import api_process

pytestmark = pytest.mark.api

CAP = 700  # RAG_INGEST__MAX_FILE_CHUNKS of these servers


def long_text(paragraphs: int, topic: str = "harbour") -> bytes:
    """One chunk per 10 paragraphs."""
    return "\n\n".join(
        f"Paragraph {i} tells of {topic} number {i} and the ships that sailed from it at dawn."
        for i in range(paragraphs)
    ).encode()


def job_of(url: str, job: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job['id']}").json()
    return body


def embedding_begun(url: str, job: dict[str, Any], timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not job["progress"]:
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = job_of(url, job)
    return job


def folder_of(data_dir: Path, name: str) -> Path:
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    return Collections(settings.data_dir, settings.corpus_dir).get(name).folder


def generation(url: str, name: str) -> int:
    listed = httpx.get(f"{url}/v1/collections/{name}/documents").json()
    value: int = listed["generation"]
    return value


@pytest.fixture
def env(tmp_path: Path, indexed_docs: dict[str, str]) -> dict[str, str]:
    return {
        **indexed_docs,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_INGEST__MAX_FILE_CHUNKS": str(CAP),
    }


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    with api_process(tmp_path, env) as (url, _):
        yield url


def test_a_running_job_cancelled_commits_nothing_restores_the_folder_and_is_not_resumed(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    with api_process(tmp_path, env) as (url, _):
        httpx.put(f"{url}/v1/collections/ports")
        base = f"{url}/v1/collections/ports/documents"
        first = wait_job(url, accepted(httpx.put(f"{base}/first.md", content=b"# First\n\nowls")))
        committed = first["result"]["generation"]
        # One job that replaces a document and adds a large one.
        files = [("first.md", long_text(3000, "lighthouse")), ("long.md", long_text(3000))]
        job = accepted(httpx.post(base, files=[("files", f) for f in files]))
        job = embedding_begun(url, job)

        cancelled = httpx.delete(f"{url}/v1/jobs/{job['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        again = httpx.delete(f"{url}/v1/jobs/{job['id']}")  # idempotent
        assert again.status_code == 200 and again.json()["state"] == "cancelled"

        folder = folder_of(data, "ports")
        assert (folder / "first.md").read_bytes() == b"# First\n\nowls"  # the old bytes back
        assert not (folder / "long.md").exists()
        assert generation(url, "ports") == committed
        assert sources(url, "owls", "ports") == ["first.md"]
        # The next job indexes only its own file: nothing of the cancelled one was left behind.
        later = wait_job(url, accepted(httpx.put(f"{base}/later.md", content=b"# Later\n\nbats")))
        assert later["state"] == "done" and later["result"]["added"] == 1
        assert later["result"]["updated"] == 0
        listed = httpx.get(base).json()["documents"]
        assert [d["path"] for d in listed] == ["first.md", "later.md"]

    with api_process(tmp_path, env) as (url, _):
        after = job_of(url, job)
        assert after["state"] == "cancelled" and after["resumed"] == 0
        assert generation(url, "ports") == committed + 1  # the later job's, and no other


def test_a_queued_job_cancelled_never_runs(server: str, tmp_path: Path) -> None:
    httpx.put(f"{server}/v1/collections/queue")
    base = f"{server}/v1/collections/queue/documents"
    running = embedding_begun(
        server, accepted(httpx.put(f"{base}/long.md", content=long_text(3000)))
    )
    queued = accepted(httpx.put(f"{base}/small.md", content=b"# Small\n\nwrens"))
    assert job_of(server, queued)["state"] == "queued"  # one job at a time per collection

    cancelled = httpx.delete(f"{server}/v1/jobs/{queued['id']}").json()
    assert cancelled["state"] == "cancelled" and cancelled["started_at"] is None
    assert httpx.delete(f"{server}/v1/jobs/{running['id']}").json()["state"] == "cancelled"
    assert not (folder_of(tmp_path / "data", "queue") / "small.md").exists()
    assert httpx.get(base).json()["documents"] == []

    done = wait_job(server, accepted(httpx.put(f"{base}/ok.md", content=b"# Ok\n\nfinches")))
    assert httpx.delete(f"{server}/v1/jobs/{done['id']}").json()["state"] == "done"  # too late
    assert_problem(httpx.delete(f"{server}/v1/jobs/{'0' * 24}"), 404)


def test_deleting_a_collection_cancels_its_jobs(server: str, tmp_path: Path) -> None:
    httpx.put(f"{server}/v1/collections/doomed")
    base = f"{server}/v1/collections/doomed/documents"
    running = embedding_begun(
        server, accepted(httpx.put(f"{base}/long.md", content=long_text(3000)))
    )
    queued = accepted(httpx.put(f"{base}/small.md", content=b"# Small\n\nwrens"))

    assert httpx.delete(f"{server}/v1/collections/doomed").status_code == 204
    assert job_of(server, running)["state"] == "cancelled"
    assert job_of(server, queued)["state"] == "cancelled"
    assert_problem(httpx.get(base), 404)
    assert not (tmp_path / "data" / "collections" / "doomed").exists()


def thread_nice_values(pid: int) -> list[int]:
    """The nice value of each thread of the process (field 19 of /proc/<pid>/task/<tid>/stat)."""
    values = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            values.append(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
    return values


def test_a_small_job_of_one_collection_finishes_while_another_s_large_one_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with api_process(tmp_path, env) as (server, proc):
        for name in ("large", "small"):
            httpx.put(f"{server}/v1/collections/{name}")
        large = accepted(
            httpx.put(f"{server}/v1/collections/large/documents/long.md", content=long_text(6000))
        )
        large = embedding_begun(server, large)
        # The job runs at a lower priority than the threads that answer queries.
        assert 10 in thread_nice_values(proc.pid) and 0 in thread_nice_values(proc.pid)
        small = accepted(
            httpx.put(f"{server}/v1/collections/small/documents/s.md", content=b"# S\n\nherons")
        )
        assert wait_job(server, small, timeout_s=300)["state"] == "done"
        assert job_of(server, large)["state"] == "running"  # not queued behind it: still embedding
        assert sources(server, "herons", "small") == ["s.md"]
        httpx.delete(f"{server}/v1/jobs/{large['id']}")


def test_a_file_over_the_chunk_cap_fails_before_embedding(server: str) -> None:
    httpx.put(f"{server}/v1/collections/capped")
    base = f"{server}/v1/collections/capped/documents"
    job = wait_job(server, accepted(httpx.put(f"{base}/huge.md", content=long_text(9000))))
    assert job["state"] == "failed" and "huge.md" in job["error"]
    assert f"more than the {CAP}" in job["error"]
    assert job["result"]["chunks"]["embedded"] == 0
    [failed] = job["result"]["failed"]
    assert failed["path"] == "huge.md" and "RAG_INGEST__MAX_FILE_CHUNKS" in failed["error"]

"""Document jobs in the PostgreSQL layout: API replicas with their own empty data folders and
HOME share a private PostgreSQL and Chroma's own server on loopback. An upload through one
replica is listed and found through the other, a job on the other keeps it, a job running on
one is cancelled through the other, a mirrored folder is never written by a replica, and a
replica killed (SIGKILL) while its job embeds has that job adopted and finished by another, with
each document indexed exactly once."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import chromadb
import httpx
import pytest

from rag_service.settings import Settings
from tests.api.test_collections import accepted, sources, wait_job
from tests.api.test_http import assert_problem
from tests.api.test_jobs import embedding_begun, long_text
from tests.servers import api_process, api_server, own_env, shared_engines, wait_for

pytestmark = [pytest.mark.api, pytest.mark.slow]


class Cluster:
    def __init__(self, root: Path, shared: dict[str, str], replicas: list[str]) -> None:
        self.root, self.shared, self.replicas = root, shared, replicas

    def folder(self, replica: str, collection: str) -> Path:
        """A managed collection's folder in a replica's own data folder."""
        return self.root / replica / "data" / "collections" / collection / "documents"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("jobs")
    (root / "corpus").mkdir()
    with ExitStack() as stack:
        _, engines = stack.enter_context(shared_engines(root))
        # Asked for, writing a mirrored folder must still be refused in this layout.
        shared = {**engines, "RAG_CORPUS_DIR": str(root / "corpus")}
        shared["RAG_API__WRITE_MIRRORED"] = "true"
        replicas = [
            stack.enter_context(api_server(root / name, own_env(root, name, shared)))
            for name in ("replica-a", "replica-b")
        ]
        yield Cluster(root, shared, replicas)


def create(url: str, name: str) -> None:
    assert httpx.put(f"{url}/v1/collections/{name}").status_code == 201


def documents(url: str, name: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = httpx.get(f"{url}/v1/collections/{name}/documents").json()[
        "documents"
    ]
    return listed


def collection(url: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/collections").json()
    return next(c for c in body["collections"] if c["name"] == name)


def visible_chunks(port: str, name: str, generation: int) -> list[str]:
    """The ids of the chunks Chroma holds visible at ``generation`` for the collection."""
    prefix = Settings(_env_file=None).store.collection_prefix  # type: ignore[call-arg]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    client = chromadb.HttpClient(host="127.0.0.1", port=int(port))
    ids: list[str] = []
    for found in client.list_collections():
        if found.name.startswith(f"{prefix}-{digest}-"):
            where = {
                "$and": [{"added_in": {"$lte": generation}}, {"retired_in": {"$gt": generation}}]
            }
            ids += found.get(where=where, include=[])["ids"]  # type: ignore[arg-type]
    return ids


def test_an_upload_through_one_replica_is_listed_and_found_through_the_other(
    cluster: Cluster,
) -> None:
    a, b = cluster.replicas
    create(a, "birds")
    kiwi = b"# Kiwi\n\nThe kiwi is a flightless bird that lays a very large egg.\n"
    job = wait_job(
        a, accepted(httpx.put(f"{a}/v1/collections/birds/documents/kiwi.md", content=kiwi))
    )
    assert job["state"] == "done", job
    assert httpx.get(f"{b}/v1/jobs/{job['id']}").json()["state"] == "done"  # one record
    wait_for(lambda: sources(b, "flightless bird egg", "birds") == ["kiwi.md"], "kiwi.md on B")
    assert [d["path"] for d in documents(b, "birds")] == ["kiwi.md"]
    text = httpx.get(f"{b}/v1/collections/birds/documents/kiwi.md").json()["text"]
    assert "flightless" in text

    # B's job checks its folder out first: the next generation keeps A's document.
    emu = b"# Emu\n\nThe emu is the second-largest living bird by height.\n"
    job = wait_job(
        b, accepted(httpx.put(f"{b}/v1/collections/birds/documents/emu.md", content=emu))
    )
    assert job["state"] == "done", job
    assert job["result"]["added"] == 1 and job["result"]["deleted"] == 0
    for url in (a, b):
        wait_for(lambda url=url: len(documents(url, "birds")) == 2, f"both documents on {url}")
        assert [d["path"] for d in documents(url, "birds")] == ["emu.md", "kiwi.md"]
    assert {p.name for p in cluster.folder("replica-b", "birds").iterdir()} == {"emu.md", "kiwi.md"}

    # A delete through A is one too, for B's next job as well.
    gone = wait_job(a, accepted(httpx.delete(f"{a}/v1/collections/birds/documents/kiwi.md")))
    assert gone["state"] == "done" and gone["result"]["deleted"] == 1, gone
    wait_for(lambda: [d["path"] for d in documents(b, "birds")] == ["emu.md"], "the delete on B")


def test_a_job_running_on_one_replica_is_cancelled_through_the_other(cluster: Cluster) -> None:
    a, b = cluster.replicas
    create(b, "ports")
    base = "/v1/collections/ports/documents"
    first = wait_job(a, accepted(httpx.put(f"{a}{base}/first.md", content=b"# First\n\nowls")))
    job = embedding_begun(a, accepted(httpx.put(f"{a}{base}/long.md", content=long_text(3000))))

    cancelled = httpx.delete(f"{b}/v1/jobs/{job['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert collection(a, "ports")["generation"] == first["result"]["generation"]
    # Undone in the documents: B's next job indexes its own file and first.md, no long.md.
    later = wait_job(b, accepted(httpx.put(f"{b}{base}/later.md", content=b"# Later\n\nbats")))
    assert later["state"] == "done" and later["result"]["added"] == 1, later
    assert [d["path"] for d in documents(a, "ports")] == ["first.md", "later.md"]
    assert not (cluster.folder("replica-b", "ports") / "long.md").exists()


def test_a_replica_never_writes_a_mirrored_folder(cluster: Cluster) -> None:
    a, _ = cluster.replicas
    refused = httpx.put(f"{a}/v1/collections/default/documents/note.md", content=b"# Note\n\nx")
    assert_problem(refused, 403)
    assert (
        "rag reindex" in refused.json()["detail"] and "RAG_STATE__URL" in refused.json()["detail"]
    )
    assert not (cluster.root / "corpus" / "note.md").exists()
    assert collection(a, "default")["writable"] is False


def test_a_job_of_a_killed_replica_is_adopted_and_finished_by_another(cluster: Cluster) -> None:
    a, b = cluster.replicas
    env = own_env(cluster.root, "replica-c", cluster.shared)
    with api_process(cluster.root / "replica-c", env) as (c, process):
        create(c, "harbours")
        files = [("long.md", long_text(3000)), ("small.md", b"# Small\n\nThe wrens nest here.")]
        job = accepted(
            httpx.post(
                f"{c}/v1/collections/harbours/documents", files=[("files", f) for f in files]
            )
        )
        job = embedding_begun(a, job)  # as the other replicas see it
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    # Its job-lock session died with it: A or B adopts the job within seconds and finishes it.
    job = wait_job(a, job, timeout_s=600)
    assert job["state"] == "done" and job["resumed"] == 1, job
    assert job["result"]["added"] == 2
    for url in (a, b):
        wait_for(lambda url=url: len(documents(url, "harbours")) == 2, f"the documents on {url}")
        listed = documents(url, "harbours")
        assert [d["path"] for d in listed] == ["long.md", "small.md"]  # each exactly once
        served = collection(url, "harbours")
        assert (
            served["chunks"] == sum(d["chunks"] for d in listed) == job["result"]["chunks"]["total"]
        )
        assert served["generation"] == job["result"]["generation"]
    visible = visible_chunks(
        cluster.shared["RAG_STORE__CHROMA_PORT"], "harbours", served["generation"]
    )
    assert len(visible) == len(set(visible)) == served["chunks"]
    assert sources(b, "wrens nest", "harbours")[0] == "small.md"

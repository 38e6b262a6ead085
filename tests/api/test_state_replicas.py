"""The PostgreSQL layout as it is deployed across hosts: a private PostgreSQL and Chroma's own
server on loopback, a reindex and two API replicas each with its own empty data folder and
HOME, so nothing but the two engines is shared. A corpus indexed by the reindex is served by
both replicas, a new generation reaches both, and PostgreSQL going away leaves them answering
from what they loaded while a reindex fails cleanly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA
from tests.servers import Postgres, api_server, own_env, rag_cli, shared_engines, wait_for

pytestmark = [pytest.mark.api, pytest.mark.slow]

QUESTION = "How many heads did the original transformer use?"


def search(url: str, query: str) -> dict:
    response = httpx.post(f"{url}/v1/search", json={"query": query, "top_k": 3}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


class Cluster:
    def __init__(self, root: Path, pg: Postgres, shared: dict[str, str]) -> None:
        self.root, self.pg, self.shared = root, pg, shared
        self.reindexer = own_env(root, "reindex", shared)
        self.replicas: list[str] = []
        self.generation = 0  # the last one the reindex committed (tests run in any order)

    def reindex(self) -> dict:
        done = rag_cli(self.reindexer, "reindex", "--json")
        assert done.returncode == 0, done.stderr
        report: dict = json.loads(done.stdout)
        self.generation = report["generation"] or self.generation
        return report


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas")
    docs = root / "docs"
    shutil.copytree(DATA / "docs", docs)
    with ExitStack() as stack:
        pg, engines = stack.enter_context(shared_engines(root))
        shared = {**engines, "RAG_CORPUS_DIR": str(docs)}
        cluster = Cluster(root, pg, shared)
        assert cluster.reindex()["generation"] == 1
        for name in ("replica-a", "replica-b"):
            env = own_env(root, name, shared)
            cluster.replicas.append(stack.enter_context(api_server(root / name, env)))
        yield cluster


def test_both_replicas_serve_what_the_reindex_committed(cluster: Cluster) -> None:
    for url in cluster.replicas:
        body = search(url, QUESTION)
        assert body["passages"][0]["source"] == "attention.md"
        assert body["generation"] == cluster.generation
    # Nothing of the index is in a replica's data folder but caches: no pointer, no manifest.
    for name in ("replica-a", "replica-b", "reindex"):
        assert not (cluster.root / name / "data" / "CURRENT.json").exists()
        assert not (cluster.root / name / "data" / "manifests").exists()


def test_a_new_generation_reaches_both_replicas(cluster: Cluster) -> None:
    docs = Path(cluster.shared["RAG_CORPUS_DIR"])
    (docs / "kiwi.md").write_text(
        "# Kiwi\n\nThe kiwi is a flightless bird endemic to New Zealand. It lays the largest "
        "egg relative to its body size of any bird.\n",
        encoding="utf-8",
    )
    before = search(cluster.replicas[0], "flightless bird New Zealand")["generation"]
    generation = cluster.reindex()["generation"]
    assert generation == before + 1
    for url in cluster.replicas:
        wait_for(
            lambda url=url: search(url, "flightless bird New Zealand")["generation"] == generation,
            f"generation {generation} on {url}",
        )
        assert search(url, "flightless bird New Zealand")["passages"][0]["source"] == "kiwi.md"


def test_without_postgresql_replicas_keep_answering_and_a_reindex_fails_cleanly(
    cluster: Cluster,
) -> None:
    served = search(cluster.replicas[0], QUESTION)["generation"]
    cluster.pg.stop()
    try:
        for url in cluster.replicas:
            body = search(url, QUESTION)
            assert body["generation"] == served and body["passages"][0]["source"] == "attention.md"

            def degraded(url: str = url) -> bool:
                ready = httpx.get(f"{url}/readyz", timeout=30)
                return ready.status_code == 200 and ready.json()["status"] == "degraded"

            wait_for(degraded, f"{url} to say degraded")
            checks = httpx.get(f"{url}/readyz", timeout=30).json()["checks"]
            assert checks["state"]["ok"] is False and "PostgreSQL" in checks["state"]["detail"]
            assert checks["index"]["ok"] and checks["store"]["ok"]

        (Path(cluster.shared["RAG_CORPUS_DIR"]) / "emu.md").write_text(
            "# Emu\n\nThe emu is the second-largest living bird by height.\n", encoding="utf-8"
        )
        failed = rag_cli(cluster.reindexer, "reindex")
        assert failed.returncode != 0
        assert "PostgreSQL" in failed.stderr and "Traceback" not in failed.stderr
        assert "rag@" not in failed.stderr  # the URL's user info is never shown
    finally:
        cluster.pg.start()
    for url in cluster.replicas:
        wait_for(
            lambda url=url: httpx.get(f"{url}/readyz", timeout=30).json().get("status") == "ready",
            f"{url} ready again",
        )
        assert search(url, QUESTION)["generation"] == served  # the failed run committed nothing
    report = cluster.reindex()
    assert report["added"] == 1 and report["generation"] == served + 1
    for url in cluster.replicas:
        wait_for(
            lambda url=url: search(url, "second-largest bird")["passages"][0]["source"] == "emu.md",
            f"emu.md on {url}",
        )

"""The PostgreSQL layout with every process on a host of its own: the reindex and two API
replicas each in a network namespace (own loopback, one link to a bridge) and with their own
data folder and HOME; PostgreSQL and Chroma listen on the bridge. Whatever works here does not
lean on a shared loopback or a shared folder, only on the two engines' ports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATA
from tests.servers import (
    Hosts,
    free_port,
    hosts,
    own_env,
    postgres_server,
    rag_cli,
    running,
    wait_for,
)

pytestmark = [pytest.mark.api, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


class Site:
    def __init__(self, net: Hosts, root: Path, shared: dict[str, str], pg_port: int) -> None:
        self.net, self.root, self.shared, self.pg_port = net, root, shared, pg_port
        self.replicas: list[tuple[tuple[str, ...], str]] = []  # (prefix, URL)
        self.reindex_host: tuple[tuple[str, ...], dict[str, str]] = ((), {})
        self.key = ""

    def rag(self, *args: str) -> str:
        """``rag ARGS`` on the reindex's host; its stdout."""
        prefix, env = self.reindex_host
        done = rag_cli(env, *args, prefix=prefix)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("hosts")
    docs = root / "docs"
    shutil.copytree(DATA / "docs", docs)
    with ExitStack() as stack:
        net = stack.enter_context(hosts())
        pg = stack.enter_context(postgres_server(host=net.gateway, trust=net.network))
        chroma_port = free_port()
        chroma = [
            str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(root / "chroma"),
        ]
        chroma += ["--host", net.gateway, "--port", str(chroma_port)]
        stack.enter_context(
            running(chroma, f"http://{net.gateway}:{chroma_port}/api/v2/heartbeat", root, wait_s=30)
        )
        shared = {
            "RAG_STATE__URL": pg.url,
            "RAG_STORE__BACKEND": "chroma-http",
            "RAG_STORE__CHROMA_HOST": net.gateway,
            "RAG_STORE__CHROMA_PORT": str(chroma_port),
            "RAG_CORPUS_DIR": str(docs),
            "RAG_LOG__FORMAT": "json",
            "PYTHONPATH": str(REPO),
        }
        site = Site(net, root, shared, pg.port)
        prefix, _ = net.add()
        site.reindex_host = (prefix, own_env(root, "reindex", shared))
        indexed = site.rag("reindex", "--json")
        assert json.loads(indexed)["generation"] == 1
        site.key = site.rag("keys", "create", "--name", "everywhere", "--scope", "query").strip()
        for name in ("replica-a", "replica-b"):
            prefix, address = net.add()
            port = free_port()
            # Bound to an address other hosts reach, a replica requires keys (RAG_API__AUTH=auto):
            # the one made on the reindex's host is in PostgreSQL for both.
            env = {**own_env(root, name, shared), "RAG_API__HOST": address}
            argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
            url = f"http://{address}:{port}"
            stack.enter_context(running(argv, f"{url}/healthz", root / name, env, prefix=prefix))
            site.replicas.append((prefix, url))
        yield site


def search(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/search",
        json={"query": "How many heads did the original transformer use?", "top_k": 3},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_replicas_on_their_own_hosts_serve_the_reindex_hosts_index(site: Site) -> None:
    for _, url in site.replicas:
        response = search(url, site.key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["generation"] == 1 and body["passages"][0]["source"] == "attention.md"
        ready = httpx.get(f"{url}/readyz", timeout=30).json()
        assert ready["status"] == "ready" and ready["checks"]["state"]["detail"] == "postgresql"
        assert search(url, "rag_" + "x" * 43).status_code == 401


def test_a_bm25_backend_switched_by_a_reindex_serves_on_another_host(site: Site) -> None:
    """After another RAG_RETRIEVAL__BM25_BACKEND, `rag reindex` builds that index for the served
    generation (nothing else changed) and shares it: a replica on a new host with the new
    setting fetches it. It used to stay on the reindex's host, and such a replica answered 503
    "run `rag reindex`" however often that was done."""
    switched = {"RAG_RETRIEVAL__BM25_BACKEND": "rank-bm25"}
    prefix, env = site.reindex_host
    done = rag_cli({**env, **switched}, "reindex", "--json", prefix=prefix)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["generation"] is None and report["added"] == report["updated"] == 0
    prefix, address = site.net.add()
    port = free_port()
    env = {**own_env(site.root, "replica-rank", site.shared), **switched, "RAG_API__HOST": address}
    argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
    url = f"http://{address}:{port}"
    with running(argv, f"{url}/healthz", site.root / "replica-rank", env, prefix=prefix):
        response = search(url, site.key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generation"] == 1 and body["passages"][0]["source"] == "attention.md"


def test_a_key_revoked_on_another_host_is_refused_by_both_replicas(site: Site) -> None:
    key = site.rag("keys", "create", "--name", "short-lived", "--scope", "query").strip()
    for _, url in site.replicas:
        assert search(url, key).status_code == 200
    site.rag("keys", "revoke", "short-lived")
    wait_for(
        lambda: all(search(url, key).status_code == 401 for _, url in site.replicas),
        "both replicas to refuse the revoked key",
        30,
    )


def test_a_replicas_host_shares_no_loopback_with_the_engines(site: Site) -> None:
    prefix, _ = site.replicas[0]
    probe = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)"
    on_loopback = subprocess.run(
        [*prefix, sys.executable, "-c", probe, str(site.pg_port)], capture_output=True, text=True
    )
    assert on_loopback.returncode != 0 and "Connection refused" in on_loopback.stderr
    over_the_link = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-c",
            probe.replace("127.0.0.1", site.net.gateway),
            str(site.pg_port),
        ],
        capture_output=True,
        text=True,
    )
    assert over_the_link.returncode == 0, over_the_link.stderr

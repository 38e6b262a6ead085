"""Server mode, as docker-compose runs it: Chroma's own server (``chroma run``) on loopback, API
processes and reindexes that share it and one data folder (pointer, manifests, BM25)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ingest.reindex import reindex
from rag_service.settings import Settings
from tests.api.test_http import assert_problem, metric_samples
from tests.conftest import DATA, CountingEmbedder
from tests.servers import api_server, chroma_server, free_port

pytestmark = [pytest.mark.api, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def server_env(tmp_path: Path, chroma_port: int) -> dict[str, str]:
    docs = tmp_path / "docs"
    if not docs.exists():
        shutil.copytree(DATA / "docs", docs)
    return {
        "RAG_STORE__BACKEND": "chroma-http",
        "RAG_STORE__CHROMA_PORT": str(chroma_port),
        "RAG_STORE__CHROMA_TIMEOUT_S": "2",
        "RAG_DATA_DIR": str(tmp_path / "shared"),
        "RAG_CORPUS_DIR": str(docs),
        "RAG_LOG__FORMAT": "json",
    }


def rag_reindex(env: dict[str, str], cwd: Path) -> dict:
    """``rag reindex --json`` as its own process, like `docker compose run --rm reindex`."""
    done = subprocess.run(
        [sys.executable, "-m", "rag_cli", "reindex", "--json"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report: dict = json.loads(done.stdout)
    return report


def top_hit(url: str, query: str) -> tuple[int, str]:
    response = httpx.post(f"{url}/v1/search", json={"query": query, "top_k": 3}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["generation"], body["passages"][0]["source"]


def collections(chroma_url: str) -> list[str]:
    listing = httpx.get(
        f"{chroma_url}/api/v2/tenants/default_tenant/databases/default_database/collections"
    )
    return [c["name"] for c in listing.json()]


def test_replicas_share_one_chroma_server_and_follow_a_reindex_without_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = server_env(tmp_path, port)
    docs, shared = Path(env["RAG_CORPUS_DIR"]), Path(env["RAG_DATA_DIR"])
    with chroma_server(tmp_path / "chroma", port):
        first = rag_reindex(env, tmp_path)
        assert first["generation"] == 1 and first["added"] == 4
        pointer = json.loads((shared / "CURRENT.json").read_text())
        # The vectors live in the server; nothing embedded was created beside the pointer.
        assert collections(f"http://127.0.0.1:{port}") == [pointer["collection"]]
        assert not (shared / "chroma").exists()

        with api_server(tmp_path, env) as one, api_server(tmp_path, env) as two:
            for url in (one, two):
                assert top_hit(url, "BM25 saturation parameter k1") == (1, "guides/bm25.txt")

            # A third process reindexes: both replicas serve the new generation on their next
            # request, without a restart.
            (docs / "llama.md").write_text("# Llamas\n\nLlamas are South American camelids.\n")
            second = rag_reindex(env, tmp_path)
            assert second["generation"] == 2 and second["chunks"]["embedded"] == 1
            for url in (one, two):
                assert top_hit(url, "Which camelids live in South America?") == (2, "llama.md")
                assert httpx.get(f"{url}/v1/index").json()["generation"] == 2
                samples = metric_samples(url)
                assert samples[("rag_index_generation", frozenset({("state", "served")}))] == 2
                assert samples[("rag_index_loads", frozenset())] == 2

            # Nothing changed: the third run writes nothing, and the replicas keep serving.
            third = rag_reindex(env, tmp_path)
            assert third["generation"] is None and third["chunks"]["embedded"] == 0
            assert top_hit(one, "camelids") == (2, "llama.md")


def test_readiness_follows_the_chroma_server(tmp_path: Path, embedder: CountingEmbedder) -> None:
    port = free_port()
    env = server_env(tmp_path, port)
    settings = Settings(
        _env_file=None,
        **{  # type: ignore[call-arg]
            "data_dir": env["RAG_DATA_DIR"],
            "corpus_dir": env["RAG_CORPUS_DIR"],
            "store": {"backend": "chroma-http", "chroma_port": port},
        },
    )
    chroma_data = tmp_path / "chroma"
    # The API may start before Chroma and before the first index, as under docker-compose.
    with api_server(tmp_path, env) as url:
        body = assert_problem(httpx.get(f"{url}/readyz"), 503)
        assert body["checks"]["index"]["ok"] is False

        with chroma_server(chroma_data, port) as chroma:
            reindex(settings, embedder=embedder)
            ready = httpx.get(f"{url}/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["store"]["ok"] is True
            assert top_hit(url, "BM25 saturation parameter k1") == (1, "guides/bm25.txt")

            # A hung server (stopped, not dead: connections open, nothing answers) fails the
            # check within the configured timeout instead of holding the probe.
            os.kill(chroma.pid, signal.SIGSTOP)
            try:
                # Stopped, Chroma would hold the probe past this client's 30 s: an answer at
                # all means the store's own timeout ended the check.
                hung = assert_problem(httpx.get(f"{url}/readyz", timeout=30), 503)
                assert hung["checks"]["store"]["ok"] is False
                assert "does not answer" in hung["checks"]["store"]["detail"]
            finally:
                os.kill(chroma.pid, signal.SIGCONT)
            assert httpx.get(f"{url}/readyz").status_code == 200

        # Chroma stopped: not ready, and searches are 503 problems that say why.
        down = assert_problem(httpx.get(f"{url}/readyz"), 503)
        assert down["checks"]["store"]["ok"] is False
        assert f"the Chroma server at 127.0.0.1:{port} does not answer" in down["detail"]
        failed = assert_problem(httpx.post(f"{url}/v1/search", json={"query": "BM25"}), 503)
        assert "Chroma server" in failed["detail"]

        # Back on the same data: ready again, same answers, no restart of the API.
        with chroma_server(chroma_data, port):
            assert httpx.get(f"{url}/readyz").status_code == 200
            assert top_hit(url, "BM25 saturation parameter k1") == (1, "guides/bm25.txt")

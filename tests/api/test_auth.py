"""API keys over a real `rag serve`: none needed on loopback by default; with auth required, no
key is a 401, a query key searches and asks but may not use admin routes, a revoked key stops
working at once, every caller is rate-limited, and a server that needs keys and has none does
not start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rag_service.keys import KeyStore
from tests.api.test_http import assert_problem
from tests.servers import api_server

pytestmark = pytest.mark.api

SEARCH = {"query": "How many heads did the original transformer use?", "top_k": 2}


def rag(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rag_cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def own_index(tmp_path: Path, indexed_docs: dict[str, str]) -> dict[str, str]:
    """The module's test index copied for one test, so the keys it makes are its own."""
    data = tmp_path / "data"
    shutil.copytree(indexed_docs["RAG_DATA_DIR"], data)
    return {**indexed_docs, "RAG_DATA_DIR": str(data)}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_scopes_revocation_and_the_access_log(
    tmp_path: Path, own_index: dict[str, str]
) -> None:
    env = {**own_index, "RAG_API__AUTH": "required"}
    made = rag("keys", "create", "--name", "reader", "--scope", "query", env=env)
    assert made.returncode == 0, made.stderr
    query_key = made.stdout.strip()
    admin_key = rag("keys", "create", "--name", "ops", "--scope", "admin", env=env).stdout.strip()
    assert query_key.startswith("rag_") and admin_key.startswith("rag_")
    data = Path(own_index["RAG_DATA_DIR"])
    stored = (data / "keys.json").read_text() + (data / "keys.secret").read_text()
    assert query_key not in stored and admin_key not in stored

    log = tmp_path / "api.log"
    with api_server(tmp_path, {**env, "RAG_LOG__FORMAT": "json"}, log=log) as api:
        missing = httpx.post(f"{api}/v1/search", json=SEARCH)
        assert_problem(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.post(f"{api}/v1/search", json=SEARCH, headers=bearer("rag_" + "x" * 43))
        assert_problem(wrong, 401)

        found = httpx.post(f"{api}/v1/search", json=SEARCH, headers=bearer(query_key))
        assert found.status_code == 200 and found.json()["passages"]
        by_header = httpx.post(f"{api}/v1/search", json=SEARCH, headers={"X-API-Key": query_key})
        assert by_header.status_code == 200
        ask = {"question": SEARCH["query"]}
        assert httpx.post(f"{api}/v1/ask", json=ask, headers=bearer(query_key)).status_code == 200
        assert httpx.get(f"{api}/v1/index", headers=bearer(query_key)).status_code == 200

        assert_problem(httpx.get(f"{api}/v1/keys", headers=bearer(query_key)), 403)
        listing = httpx.get(f"{api}/v1/keys", headers=bearer(admin_key))
        assert listing.status_code == 200
        names = {k["name"]: k for k in listing.json()}
        assert names["reader"]["scope"] == "query" and names["reader"]["last_used"]
        assert query_key not in listing.text

        # Probes and metrics stay open for orchestrators and scrapers.
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"{api}{probe}").status_code == 200, probe

        revoked = rag("keys", "revoke", "reader", env=env)
        assert revoked.returncode == 0, revoked.stderr
        assert_problem(httpx.post(f"{api}/v1/search", json=SEARCH, headers=bearer(query_key)), 401)
        assert (
            httpx.post(f"{api}/v1/search", json=SEARCH, headers=bearer(admin_key)).status_code
            == 200
        )

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("path") == "/v1/search"]
    assert {"reader", "ops", None} <= {line.get("caller") for line in access}
    assert query_key not in log.read_text() and admin_key not in log.read_text()

    listed = json.loads(rag("keys", "list", "--json", env=env).stdout)
    assert [k["name"] for k in listed] == ["ops"]


def test_a_server_that_needs_keys_and_has_none_does_not_start(tmp_path: Path) -> None:
    env = {"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_API__AUTH": "required"}
    refused = rag("serve", "--port", "1", env=env)
    assert refused.returncode == 2
    assert "rag keys create --name NAME --scope admin" in refused.stderr
    # RAG_API__AUTH=auto (the default) decides by the address: beyond loopback, keys are needed.
    env = {"RAG_DATA_DIR": str(tmp_path / "data")}
    assert (
        "API keys are required" in rag("serve", "--host", "0.0.0.0", "--port", "1", env=env).stderr
    )


def test_rate_limit_per_key_answers_429_with_retry_after(
    tmp_path: Path, own_index: dict[str, str]
) -> None:
    store = KeyStore(Path(own_index["RAG_DATA_DIR"]))
    one, other = store.create("one", "query"), store.create("other", "query")
    env = {**own_index, "RAG_API__AUTH": "required", "RAG_API__RATE_LIMIT_PER_MINUTE": "3"}
    with api_server(tmp_path, env) as api:
        statuses = [httpx.get(f"{api}/v1/index", headers=bearer(one)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = httpx.get(f"{api}/v1/index", headers=bearer(one))
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1
        # Each key has its own allowance.
        assert httpx.get(f"{api}/v1/index", headers=bearer(other)).status_code == 200

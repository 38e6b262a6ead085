"""API keys on the PostgreSQL layout: two ``rag serve`` replicas, each with its own empty data
folder and HOME, requiring keys; a key made by ``rag keys create`` in a third process with a
data folder of its own is accepted by both, and once ``rag keys revoke`` removes it both refuse
it, without restarting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.api.test_http import assert_problem
from tests.servers import api_server, own_env, postgres_server, rag_cli, wait_for

pytestmark = [pytest.mark.api, pytest.mark.slow]


@pytest.fixture
def shared() -> Iterator[dict[str, str]]:
    with postgres_server() as pg:
        yield {"RAG_STATE__URL": pg.url, "RAG_API__AUTH": "required", "RAG_LOG__FORMAT": "json"}


def collections(url: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/v1/collections", headers=headers, timeout=30)


def test_a_key_made_anywhere_works_on_both_replicas_until_revoked(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    operator = own_env(tmp_path, "operator", shared)
    made = rag_cli(operator, "keys", "create", "--name", "reader", "--scope", "query")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()

    with ExitStack() as stack:
        replicas = [
            stack.enter_context(api_server(tmp_path / name, own_env(tmp_path, name, shared)))
            for name in ("replica-a", "replica-b")
        ]
        for url in replicas:
            assert_problem(collections(url, None), 401)
            assert collections(url, key).status_code == 200

        listed = rag_cli(operator, "keys", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(k["name"], bool(k["last_used"])) for k in json.loads(listed.stdout)] == [
            ("reader", True)
        ]

        for name in ("operator", "replica-a", "replica-b"):  # no key file anywhere
            assert not list((tmp_path / name / "data").glob("keys*")), name

        revoked = rag_cli(operator, "keys", "revoke", "reader")
        assert revoked.returncode == 0, revoked.stderr
        for url in replicas:
            wait_for(
                lambda url=url: collections(url, key).status_code == 401,
                f"{url} to refuse the revoked key",
            )

"""Abandoned streams stop generating (issue #12, finding 8): SSE clients of a real `rag serve`
hang up after the first delta, and the stub LLM, which would stream for 60 s, sees each of its
streams closed long before that."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_ask_llm import openai_env
from tests.llm_stub import TRICKLE_S
from tests.servers import api_server, llm_stub

pytestmark = pytest.mark.api

CLIENTS = 6
# Far below the stub's 60 s: a stream left running would blow it. Generous for a loaded machine.
BOUND_S = 20


@pytest.fixture(scope="module")
def stubbed(
    tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]
) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("disconnect")
    with llm_stub(root) as stub:
        env = {
            **openai_env(indexed_docs, stub, timeout_s="120", max_retries="0"),
            "RAG_API__MAX_CONCURRENT_ANSWERS": str(CLIENTS),
        }
        with api_server(root, env) as api:
            yield api, stub


def hang_up_after_first_delta(api: str, got_delta: list[bool]) -> None:
    question = {"question": "How many heads did the original transformer use?", "stream": True}
    with httpx.stream("POST", f"{api}/v1/ask", json=question, timeout=BOUND_S) as response:
        for line in response.iter_lines():
            if line.startswith("event: delta"):
                got_delta.append(True)
                return  # leaving the block closes the connection


def test_upstream_streams_close_when_their_clients_leave(stubbed: tuple[str, str]) -> None:
    api, stub = stubbed
    httpx.post(f"{stub}/_mode", json={"mode": "trickle"}).raise_for_status()
    got_delta: list[bool] = []
    clients = [
        threading.Thread(target=hang_up_after_first_delta, args=(api, got_delta))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(BOUND_S)
    assert len(got_delta) == CLIENTS
    deadline = time.monotonic() + BOUND_S
    while True:
        streams = httpx.get(f"{stub}/_streams").json()["streams"]
        if all(s["closed_by_client"] for s in streams) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print("stub streams:", streams)  # shown with -s: how long each ran
    assert len(streams) == CLIENTS
    # Before the fix they ran on for their whole TRICKLE_S.
    assert all(s["closed_by_client"] and not s["finished"] for s in streams), streams
    assert max(s["ran_s"] for s in streams) < TRICKLE_S / 2, streams

"""/v1/ask with the openai backend against real servers on loopback: the misbehaving stub
(failures become problem+json 502/504, or an error event in a stream) and llama.cpp's own
OpenAI-compatible server running the Gemma 3 270M GGUF (the whole path, end to end)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from rag_service.answering import UNVERIFIED
from rag_service.api.routes.chat import SEPARATOR
from tests.api.test_http import assert_problem
from tests.servers import api_server, free_port, llm_stub, running, sse_events

pytestmark = pytest.mark.api

QUESTION = "How many heads did the original transformer use?"


def openai_env(indexed_docs: dict[str, str], server: str, **llm: str) -> dict[str, str]:
    """RAG_* variables for the indexed test docs answered by the OpenAI-compatible ``server``
    (its URL up to the port); ``llm`` adds RAG_LLM__<NAME> settings."""
    return {
        **indexed_docs,
        "RAG_LLM__BACKEND": "openai",
        "RAG_LLM__BASE_URL": f"{server}/v1",
        **{f"RAG_LLM__{name.upper()}": value for name, value in llm.items()},
    }


@pytest.fixture(scope="module")
def stub_and_api(
    tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]
) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("stubbed")
    with llm_stub(root) as stub:
        env = openai_env(indexed_docs, stub, timeout_s="2", max_retries="0")
        with api_server(root, env) as api:
            yield api, stub


def assert_the_llms_or_a_quote(answer: dict[str, Any]) -> None:
    """A small model's answer is its own when a citation of it stands, else the documents'
    quote stands in; either way an answer is cited."""
    generator = answer["generator"]
    if generator["backend"] == "openai":
        assert generator == {"backend": "openai", "model": "gemma", "fallback_reason": None}
    else:
        assert generator["backend"] == "extractive"
        assert generator["fallback_reason"] == UNVERIFIED
    assert answer["citations"] or not answer["answerable"]


def set_mode(stub: str, mode: str) -> None:
    httpx.post(f"{stub}/_mode", json={"mode": mode}).raise_for_status()


@pytest.fixture
def stubbed(stub_and_api: tuple[str, str]) -> tuple[str, str]:
    """The API and the stub it asks, the stub healthy again whatever the test before set."""
    set_mode(stub_and_api[1], "ok")
    return stub_and_api


def test_an_answer_whose_citation_stands_is_the_llms(stubbed: tuple[str, str]) -> None:
    api, stub = stubbed
    set_mode(stub, "grounded")
    body = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}).json()
    assert body["generator"] == {"backend": "openai", "model": "default", "fallback_reason": None}
    assert body["answerable"] and body["usage"] == {"prompt_tokens": 100, "completion_tokens": 9}
    assert body["answer"].endswith(" [1]") and body["dropped_citations"] == 0
    [citation] = body["citations"]
    assert citation["n"] == 1 and citation["chunk_id"] == body["passages"][0]["chunk_id"]


def test_an_answer_with_no_verified_citation_is_replaced_by_a_quote(
    stubbed: tuple[str, str],
) -> None:
    api, stub = stubbed
    set_mode(stub, "ok")
    body = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}).json()
    # The stub cites [1] for a sentence passage 1 does not hold: the citation is removed and
    # counted, and what is left is not passed off as the documents' answer.
    assert "stub" not in body["answer"] and body["answerable"]
    assert body["generator"]["backend"] == "extractive"
    assert "no verified citation" in body["generator"]["fallback_reason"]
    assert body["dropped_citations"] == 1 and body["citations"]
    assert {c["chunk_id"] for c in body["citations"]} <= {p["chunk_id"] for p in body["passages"]}
    assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 9}  # the LLM was paid

    # Streamed, the LLM's words are out before the check: the last event carries the quote.
    with httpx.stream("POST", f"{api}/v1/ask", json={"question": QUESTION, "stream": True}) as r:
        events = sse_events(r)
    streamed = "".join(data["text"] for name, data in events if name == "delta")
    assert streamed == "The stub answers from the documents [1]."
    done = events[-1]
    assert done[0] == "done" and done[1]["answer"] == body["answer"]


def test_a_chat_stream_appends_the_quote_and_points_its_annotations_there(
    stubbed: tuple[str, str],
) -> None:
    api, stub = stubbed
    set_mode(stub, "ok")
    client = OpenAI(base_url=f"{api}/v1", api_key="unused", max_retries=0)
    with client:
        chunks = list(
            client.chat.completions.create(
                model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
            )
        )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    llm_text, separator, quote = content.partition(SEPARATOR)
    assert llm_text == "The stub answers from the documents [1]." and separator and quote
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    annotations = (last.delta.model_extra or {})["annotations"]
    assert annotations
    for annotation in annotations:
        span = annotation["url_citation"]
        assert content[span["start_index"] : span["end_index"]].startswith("[")
        assert span["start_index"] > len(llm_text) + len(SEPARATOR) - 1


@pytest.mark.parametrize(("mode", "status"), [("slow", 504), ("garbage", 502), ("error", 502)])
def test_llm_failures_are_problem_details(stubbed: tuple[str, str], mode: str, status: int) -> None:
    api, stub = stubbed
    set_mode(stub, mode)
    # The stub sleeps 30 s in "slow" mode, as long as this client waits: an answer at all means
    # the API's own timeout ended the call.
    response = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}, timeout=30)
    assert "LLM" in assert_problem(response, status)["detail"]


@pytest.mark.parametrize(("mode", "status"), [("midstream", 502), ("slow", 504)])
def test_stream_failures_end_in_an_error_event(
    stubbed: tuple[str, str], mode: str, status: int
) -> None:
    api, stub = stubbed
    set_mode(stub, mode)
    body = {"question": QUESTION, "stream": True}
    with httpx.stream("POST", f"{api}/v1/ask", json=body, timeout=30) as response:
        assert response.status_code == 200
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-1] == "error"
    assert set(names[1:-1]) <= {"delta"}
    error = events[-1][1]
    assert error["status"] == status and error["request_id"] == response.headers["x-request-id"]


def test_readiness_asks_the_llm_endpoint(stubbed: tuple[str, str]) -> None:
    api, stub = stubbed
    ready = httpx.get(f"{api}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["llm"] == {"ok": True, "detail": "openai (default)"}
    try:
        for mode, reason in [("error", "answers 500"), ("unauthorized", "rejects the API key")]:
            set_mode(stub, mode)
            body = assert_problem(httpx.get(f"{api}/readyz"), 503)
            assert body["checks"]["llm"]["ok"] is False and reason in body["detail"]
            assert body["checks"]["index"]["ok"] is True  # the rest is fine
    finally:
        set_mode(stub, "ok")
    assert httpx.get(f"{api}/readyz").status_code == 200


def test_a_stopped_llm_server_is_a_502(tmp_path: Path, indexed_docs: dict[str, str]) -> None:
    env = openai_env(indexed_docs, f"http://127.0.0.1:{free_port()}", max_retries="0")
    with api_server(tmp_path, env) as api:
        response = httpx.post(f"{api}/v1/ask", json={"question": QUESTION})
        assert "cannot reach the LLM" in assert_problem(response, 502)["detail"]
        assert (
            "llm: cannot reach the LLM" in assert_problem(httpx.get(f"{api}/readyz"), 503)["detail"]
        )
        env_fallback = {**env, "RAG_LLM__FALLBACK": "true"}
    with api_server(tmp_path, env_fallback) as api:
        body = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}).json()
        assert body["generator"]["backend"] == "extractive"
        assert "cannot reach the LLM" in body["generator"]["fallback_reason"]
        assert body["answer"].endswith("The original transformer used eight heads. [1]")
        # Answers still come (extractively): degraded, but ready.
        ready = httpx.get(f"{api}/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["llm"]["detail"].startswith(
            "degraded, answering extractively"
        )


@pytest.mark.slow
def test_end_to_end_with_llama_cpp_server(
    tmp_path: Path, indexed_docs: dict[str, str], gemma_gguf: Path
) -> None:
    port = free_port()
    llama = f"http://127.0.0.1:{port}"
    server_args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gemma_gguf),
        "--host",
        "127.0.0.1",
    ]
    server_args += ["--port", str(port), "--n_threads", "1", "--n_ctx", "4096"]
    with running(server_args, f"{llama}/v1/models", tmp_path, wait_s=120):
        env = openai_env(indexed_docs, llama, model="gemma", max_tokens="48")
        with api_server(tmp_path, env) as api:
            ask = f"{api}/v1/ask"
            body = httpx.post(ask, json={"question": QUESTION, "include_prompt": True}, timeout=120)
            answer = body.json()
            assert body.status_code == 200 and answer["prompt"], answer
            system, user = answer["prompt"][0], answer["prompt"][-1]
            assert system["role"] == "system" and "[n]" in system["content"]
            assert all(p["text"] in user["content"] for p in answer["passages"])
            assert_the_llms_or_a_quote(answer)
            assert (
                answer["usage"]["prompt_tokens"] > 100 and answer["usage"]["completion_tokens"] > 0
            )
            assert answer["answer"].strip() and answer["timings_ms"]["generate"] > 0
            numbers = {c["n"] for c in answer["citations"]}
            assert numbers <= set(range(1, len(answer["passages"]) + 1))

            stream_body = {"question": QUESTION, "stream": True}
            with httpx.stream("POST", ask, json=stream_body, timeout=120) as response:
                events = sse_events(response)
            names = [name for name, _ in events]
            assert names[0] == "passages" and names[-2:] == ["citations", "done"], names
            deltas = [data["text"] for name, data in events if name == "delta"]
            assert len(deltas) > 1 and "".join(deltas).strip()
            done = events[-1][1]
            # llama.cpp's server reports no usage in a stream (it ignores stream_options).
            assert done["timings_ms"]["generate"] > 0
            assert_the_llms_or_a_quote(done)

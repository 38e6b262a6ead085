"""Credentials never leave through errors: an endpoint that echoes the Authorization header and
the request in its error body, and a base URL carrying user:password, against the real stub."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from rag_service.errors import UpstreamError
from rag_service.llms.openai import OpenAICompatibleLLM
from rag_service.settings import LLMSettings
from rag_service.types import Chunk, GenerationParams, Message, Prompt
from tests.servers import free_port, llm_stub

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdefSECRET"
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=16)
CHUNK = Chunk("c", "Llamas eat grass.", "llama.md", "Llamas", (), 0, 17)
PROMPT = Prompt("What do llamas eat?", "en", (CHUNK,), (Message("user", "What do llamas eat?"),))
SECRETS = (KEY, "sk-test", "Bearer", "hunter2", "alice:", "0123456789abcdef", "YWxpY2U6aHVudGVyMg")


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {text!r}"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llm_stub(tmp_path_factory.mktemp("stub")) as url:
        httpx.post(f"{url}/_mode", json={"mode": "leaky"}).raise_for_status()
        yield url


def leaky(stub: str) -> OpenAICompatibleLLM:
    base = stub.replace("http://", "http://alice:hunter2@") + "/v1"
    return OpenAICompatibleLLM(LLMSettings(base_url=base, api_key=KEY, max_retries=0))


@pytest.mark.parametrize("stream", [False, True])
def test_an_echoed_authorization_header_reaches_neither_caller_nor_log(
    stub: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The stub really does echo it: this is the body the service must not relay.
    echoed = httpx.post(
        f"{stub}/v1/chat/completions", json={}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert KEY in echoed.text
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as caught:
        if stream:
            list(leaky(stub).stream(PROMPT, PARAMS))
        else:
            leaky(stub).complete(PROMPT, PARAMS)
    message = str(caught.value)
    assert "answered 500" in message and "sha256" in message
    assert_no_secret(message)
    assert "Llamas eat grass" not in message  # nor the echoed prompt
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "answered 500" in logged  # the operator still learns what came back...
    assert_no_secret(logged)  # ...scrubbed


def test_a_base_url_with_user_info_is_shown_without_it(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    dead = OpenAICompatibleLLM(
        LLMSettings(base_url=f"http://alice:hunter2@127.0.0.1:{port}/v1", max_retries=0)
    )
    caplog.set_level(logging.DEBUG)
    for call in (lambda: dead.complete(PROMPT, PARAMS), dead.check):
        with pytest.raises(UpstreamError) as caught:
            call()
        assert f"http://127.0.0.1:{port}/v1" in str(caught.value)
        assert_no_secret(str(caught.value))
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records))

"""Credentials never leave through errors, and the configured one is the one sent: against the
real stub, an endpoint that echoes the Authorization header in several forms (the bare Basic
token, the pair decoded, the user info percent-encoded) and the request in its error body."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest

from rag_service.errors import ConfigError, UpstreamError
from rag_service.llms.openai import OpenAICompatibleLLM
from rag_service.settings import LLMSettings
from rag_service.types import Chunk, GenerationParams, Message, Prompt
from tests.servers import free_port, llm_stub

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdefSECRET"
# As written in RAG_LLM__BASE_URL: percent-encoded; the password is "hunter/2é".
USERINFO = "alice:hunter%2F2%C3%A9"
BASIC = base64.b64encode("alice:hunter/2é".encode()).decode()
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=16)
CHUNK = Chunk("c", "Llamas eat grass.", "llama.md", "Llamas", (), 0, 17)
PROMPT = Prompt("What do llamas eat?", "en", (CHUNK,), (Message("user", "What do llamas eat?"),))
SECRETS = (KEY, "sk-test", "0123456789abcdef", "hunter", "alice:", BASIC.rstrip("="))


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {text!r}"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llm_stub(tmp_path_factory.mktemp("stub")) as url:
        yield url


def client(stub: str, credential: str) -> OpenAICompatibleLLM:
    """A client that sends the key (Bearer) or the URL's user info (Basic)."""
    if credential == "key":
        return OpenAICompatibleLLM(LLMSettings(base_url=stub + "/v1", api_key=KEY, max_retries=0))
    base = stub.replace("http://", f"http://{USERINFO}@") + "/v1"
    return OpenAICompatibleLLM(LLMSettings(base_url=base, max_retries=0))


@pytest.mark.parametrize(
    ("credential", "sent"), [("key", f"Bearer {KEY}"), ("url", f"Basic {BASIC}")]
)
def test_the_configured_credential_is_the_one_sent(stub: str, credential: str, sent: str) -> None:
    httpx.post(f"{stub}/_mode", json={"mode": "ok"}).raise_for_status()
    assert client(stub, credential).complete(PROMPT, PARAMS).text
    assert httpx.get(f"{stub}/_requests").json()["authorization"] == sent


def test_a_key_and_user_info_together_are_refused_before_any_request(stub: str) -> None:
    httpx.post(f"{stub}/_mode", json={"mode": "ok"}).raise_for_status()
    base = stub.replace("http://", f"http://{USERINFO}@") + "/v1"
    with pytest.raises(ConfigError) as refused:
        OpenAICompatibleLLM(LLMSettings(base_url=base, api_key=KEY))
    assert "RAG_LLM__API_KEY" in str(refused.value) and "RAG_LLM__BASE_URL" in str(refused.value)
    assert_no_secret(str(refused.value))
    assert httpx.get(f"{stub}/_requests").json()["requests"] == 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("credential", ["key", "url"])
def test_an_echoed_credential_reaches_neither_caller_nor_log(
    stub: str, credential: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    httpx.post(f"{stub}/_mode", json={"mode": "leaky"}).raise_for_status()
    llm = client(stub, credential)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as caught:
        if stream:
            list(llm.stream(PROMPT, PARAMS))
        else:
            llm.complete(PROMPT, PARAMS)
    # The stub really did echo it: this is the body the service must not relay.
    assert (
        httpx.get(f"{stub}/_requests")
        .json()["authorization"]
        .endswith(KEY if credential == "key" else BASIC)
    )
    message = str(caught.value)
    assert "answered 500" in message and "sha256" in message
    assert_no_secret(message)
    assert "Llamas eat grass" not in message  # nor the echoed prompt
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "answered 500" in logged and "10.0.0.1" in logged  # the operator still learns...
    assert_no_secret(logged)  # ...what came back, scrubbed


def test_a_base_url_with_user_info_is_shown_without_it(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    dead = OpenAICompatibleLLM(
        LLMSettings(base_url=f"http://{USERINFO}@127.0.0.1:{port}/v1", max_retries=0)
    )
    caplog.set_level(logging.DEBUG)
    for call in (lambda: dead.complete(PROMPT, PARAMS), dead.check):
        with pytest.raises(UpstreamError) as caught:
            call()
        assert f"http://127.0.0.1:{port}/v1" in str(caught.value)
        assert_no_secret(str(caught.value))
    assert_no_secret("\n".join(r.getMessage() for r in caplog.records))

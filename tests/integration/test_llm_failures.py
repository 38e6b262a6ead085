"""The OpenAI-compatible backend against real servers on loopback that are gone, slow, or
answer garbage: every failure is an UpstreamError (502) or UpstreamTimeout (504), in time."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rag_service.errors import UpstreamError, UpstreamTimeout
from rag_service.llms.openai import OpenAICompatibleLLM
from rag_service.settings import LLMSettings
from rag_service.types import Chunk, GenerationParams, Message, Prompt
from tests.llm_stub import ANSWER
from tests.servers import free_port, llm_stub

pytestmark = pytest.mark.integration

PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=16)
CHUNK = Chunk("c", "Llamas eat grass.", "llama.md", "Llamas", (), 0, 17)
PROMPT = Prompt("What do llamas eat?", "en", (CHUNK,), (Message("user", "What do llamas eat?"),))


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llm_stub(tmp_path_factory.mktemp("stub")) as url:
        yield url


def llm(stub: str, mode: str, timeout_s: float = 2, retries: int = 1) -> OpenAICompatibleLLM:
    httpx.post(f"{stub}/_mode", json={"mode": mode}).raise_for_status()
    return OpenAICompatibleLLM(
        LLMSettings(base_url=f"{stub}/v1", timeout_s=timeout_s, max_retries=retries)
    )


def requests_seen(stub: str) -> int:
    return int(httpx.get(f"{stub}/_requests").json()["requests"])


def test_a_healthy_server_answers_whole_and_streamed(stub: str) -> None:
    completion = llm(stub, "ok").complete(PROMPT, PARAMS)
    assert completion.text == ANSWER and completion.usage is not None
    pieces = list(llm(stub, "ok").stream(PROMPT, PARAMS))
    assert "".join(p.text for p in pieces) == ANSWER and len(pieces) > 2
    assert pieces[-1].usage is not None and pieces[-1].usage.completion_tokens == 9


def test_a_stopped_server_is_a_502_soon() -> None:
    dead = OpenAICompatibleLLM(
        LLMSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=10, max_retries=1)
    )
    with pytest.raises(UpstreamError, match="cannot reach the LLM") as caught:
        dead.complete(PROMPT, PARAMS)
    # A refused connection fails at once (and is retried), it does not wait out the timeout.
    assert not isinstance(caught.value, UpstreamTimeout)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_server_is_a_504_within_the_timeout(stub: str, stream: bool) -> None:
    slow = llm(stub, "slow", timeout_s=1.5)
    # The stub sleeps 30 s: a timeout raised is the configured 1.5 s, not the stub finishing.
    with pytest.raises(UpstreamTimeout, match=r"within 1\.5 s"):
        if stream:
            list(slow.stream(PROMPT, PARAMS))
        else:
            slow.complete(PROMPT, PARAMS)


def test_a_stream_that_goes_silent_is_a_504(stub: str) -> None:
    silent = llm(stub, "slowstream", timeout_s=1.5)
    pieces = []
    with pytest.raises(UpstreamTimeout):
        for piece in silent.stream(PROMPT, PARAMS):
            pieces.append(piece.text)
    assert pieces == ["The "]


@pytest.mark.parametrize("mode", ["garbage", "shapeless"])
def test_garbage_is_a_502(stub: str, mode: str) -> None:
    with pytest.raises(UpstreamError, match="malformed response"):
        llm(stub, mode).complete(PROMPT, PARAMS)


def test_a_stream_cut_short_is_a_502(stub: str) -> None:
    with pytest.raises(UpstreamError, match="without \\[DONE\\]"):
        list(llm(stub, "midstream").stream(PROMPT, PARAMS))


def test_server_errors_are_retried_then_reported(stub: str) -> None:
    with pytest.raises(UpstreamError, match="answered 500"):
        llm(stub, "error", retries=2, timeout_s=10).complete(PROMPT, PARAMS)
    assert requests_seen(stub) == 3
    assert llm(stub, "flaky", retries=2, timeout_s=10).complete(PROMPT, PARAMS).text == ANSWER
    assert requests_seen(stub) == 3  # 503, 503, then the answer


def test_the_api_key_is_sent_as_a_bearer_token(stub: str) -> None:
    httpx.post(f"{stub}/_mode", json={"mode": "ok"}).raise_for_status()
    keyed = OpenAICompatibleLLM(
        LLMSettings(base_url=f"{stub}/v1", api_key="sk-test")  # type: ignore[arg-type]
    )
    keyed.complete(PROMPT, PARAMS)
    assert httpx.get(f"{stub}/_requests").json()["authorization"] == "Bearer sk-test"

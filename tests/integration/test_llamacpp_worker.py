"""The in-process `llamacpp` backend runs the Gemma 3 270M GGUF in a worker process: a worker
that dies mid-answer is a 502 for that request and is replaced, never a dead API (or test run);
a stream nobody reads any more is cancelled in the worker."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_service.errors import ConfigError, UpstreamError
from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.settings import LLMSettings
from rag_service.types import GenerationParams, Message, Prompt

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A base model continues a story for as long as it is let, far past the first piece (asked
# to write one, it stops at once).
STORY = Prompt(
    question="story",
    language="en",
    passages=(),
    messages=(
        Message(
            "user",
            "Once upon a time, in a lighthouse by the sea, there lived an old keeper who",
        ),
    ),
)
LONG = GenerationParams(temperature=0.8, top_p=0.95, max_tokens=256)
SHORT = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=8)


@pytest.fixture
def llm(gemma_gguf: Path) -> Iterator[LlamaCppLLM]:
    llm = LlamaCppLLM(LLMSettings(model_path=gemma_gguf, n_ctx=1024, model="gemma"))
    llm.warm_up()
    yield llm
    llm.close()


def test_a_worker_killed_mid_answer_fails_that_answer_and_is_replaced(llm: LlamaCppLLM) -> None:
    first = llm.worker_pid
    assert first is not None and first != os.getpid()
    pieces = llm.stream(STORY, LONG)
    assert next(pieces).text  # the model is writing
    os.kill(first, signal.SIGSEGV)  # what a fault in native code does to the worker
    with pytest.raises(UpstreamError, match=r"died \(SIGSEGV\); a new one is starting"):
        list(pieces)
    assert llm.restarts == 1 and llm.worker_pid not in (None, first)
    # The next request is answered by the new worker.
    answer = llm.complete(STORY, SHORT)
    assert answer.text and answer.usage is not None and answer.usage.completion_tokens > 0
    llm.check()


def test_an_abandoned_stream_is_cancelled_in_the_worker(llm: LlamaCppLLM) -> None:
    pid = llm.worker_pid
    pieces = llm.stream(STORY, LONG)
    assert next(pieces).text
    pieces.close()  # what the API does when its client disconnects
    # The same worker, free again at once: it stopped writing the abandoned story.
    assert llm.restarts == 0 and llm.worker_pid == pid
    assert llm.complete(STORY, SHORT).text


def test_a_model_file_llama_cpp_cannot_read_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    llm = LlamaCppLLM(LLMSettings(model_path=broken))
    with pytest.raises(ConfigError, match="cannot load the model"):
        llm.warm_up()
    assert llm.worker_pid is None

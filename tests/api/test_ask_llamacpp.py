"""A real `rag serve` with the in-process `llamacpp` backend. With the Gemma 3 270M GGUF: when the
model's worker process dies mid-answer, that stream ends with a 502 error event, the API stays
up, and the next question is answered by a new worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from rag_service.answering import UNVERIFIED
from tests.conftest import SMALL_READER
from tests.servers import api_process, sse_events

pytestmark = [pytest.mark.api, pytest.mark.slow]

QUESTION = "How many heads did the original transformer use?"


def workers_of(pid: int) -> list[int]:
    """The model workers ``pid`` has spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended while we looked
            # The command name is in parentheses and may hold spaces: fields follow the last ')'.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


def test_a_worker_that_dies_mid_answer_is_a_502_not_a_dead_api(
    tmp_path: Path, indexed_docs: dict[str, str], gemma_gguf: Path
) -> None:
    env = {
        **indexed_docs,
        "RAG_LLM__BACKEND": "llamacpp",
        "RAG_LLM__MODEL_PATH": str(gemma_gguf),
        "RAG_LLM__MODEL": "gemma",
        "RAG_LLM__N_CTX": "2048",
        "RAG_LLM__MAX_TOKENS": "256",
        "RAG_LLM__TEMPERATURE": "0.8",
        "RAG_ANSWER__MIN_COVERAGE_EN": "0",  # always ask the model
    }
    with api_process(tmp_path, env) as (api, server):
        [worker] = workers_of(server.pid)
        body = {"question": QUESTION, "stream": True}
        with httpx.stream("POST", f"{api}/v1/ask", json=body, timeout=120) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: delta"):
                    os.kill(worker, signal.SIGSEGV)
                    break
            rest = "\n".join(lines)
        assert "event: error" in rest, rest
        error = rest.split("event: error", 1)[1]
        assert '"status":502' in error.replace(" ", "") and "died (SIGSEGV)" in error

        assert server.poll() is None and httpx.get(f"{api}/healthz").status_code == 200
        answer = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}, timeout=120)
        assert answer.status_code == 200, answer.text
        # The new worker wrote it: Gemma's own answer, or the documents' quote in its place when
        # none of its citations stood (an answer is never returned uncited).
        generator = answer.json()["generator"]
        assert generator["backend"] == "llamacpp" or generator["fallback_reason"] == UNVERIFIED
        assert answer.json()["timings_ms"]["generate"] > 0
        [replacement] = workers_of(server.pid)
        assert replacement != worker
        assert httpx.get(f"{api}/readyz").status_code == 200  # the new worker has loaded

        with httpx.stream("POST", f"{api}/v1/ask", json=body, timeout=120) as response:
            events = sse_events(response)
        assert events[-1][0] == "done"


def test_the_packaged_instruct_model_answers_by_name_over_http(
    tmp_path: Path, indexed_docs: dict[str, str], small_reader_models_dir: Path
) -> None:
    """RAG_LLM__MODEL names the packaged Qwen2.5-Coder-0.5B-Instruct and no file: the server
    finds it in its models folder, and its answer goes through the citation check. The judge,
    set to the same model, shares its worker, and /v1/ask says that it decided."""
    env = {
        **indexed_docs,
        "RAG_LLM__BACKEND": "llamacpp",
        "RAG_LLM__MODEL": SMALL_READER,
        "RAG_EMBEDDER__MODELS_DIR": str(small_reader_models_dir),
        "RAG_LLM__N_CTX": "2048",
        "RAG_LLM__MAX_TOKENS": "64",
        # One passage keeps the prompt, and so the CPU time on a shared host, short.
        "RAG_ANSWER__TOP_K": "1",
        "RAG_ANSWER__MIN_COVERAGE_EN": "0",  # always ask the model
        "RAG_JUDGE__BACKEND": "llamacpp",
        "RAG_JUDGE__MODEL": SMALL_READER,
        "RAG_JUDGE__BAND_BELOW": "100",  # every question in the band: the judge decides
        "RAG_JUDGE__BAND_ABOVE": "100",
        "RAG_JUDGE__MIN_PROBABILITY_EN": "0",  # and lets it through, whatever it says
    }
    with api_process(tmp_path, env) as (api, server):
        response = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}, timeout=120)
        assert len(workers_of(server.pid)) == 1  # one model, one worker for both
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decided_by"] == "judge" and 0 <= body["judge_probability"] <= 1
    assert body["timings_ms"]["judge"] > 0
    # The 0.5B's own answer, or the documents' quote in its place when none of its citations
    # stood (its words depend on the CPU's arithmetic); the usage is the model's either way.
    assert body["generator"] in (
        {"backend": "llamacpp", "model": SMALL_READER, "fallback_reason": None},
        {"backend": "extractive", "model": "sentence-selection", "fallback_reason": UNVERIFIED},
    ), body["generator"]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert body["answer"] and "<|im_" not in body["answer"]  # the chat template's own turns
    if body["answerable"]:
        assert body["refusal_reason"] is None
        passages = {p["chunk_id"] for p in body["passages"]}
        assert all(c["chunk_id"] in passages for c in body["citations"])
        for mark in body["marks"]:
            cited = body["citations"][mark["citation"]]["n"]
            assert body["answer"][mark["start"] : mark["end"]] == f"[{cited}]"
    else:
        assert body["refusal_reason"]

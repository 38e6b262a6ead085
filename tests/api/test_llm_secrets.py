"""Over a real `rag serve` and the real stub: an LLM endpoint that echoes the Authorization
header (the Basic credential made of the base URL's user:password, in several forms) and the
request in its 500 body. Neither the 502 problem, the SSE error event, /readyz, the fallback
reason nor the server's log carries them; a key beside that user info is refused at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.test_ask_llm import QUESTION, openai_env
from tests.api.test_http import assert_problem
from tests.integration.test_llm_secrets import KEY, USERINFO, assert_no_secret
from tests.servers import api_server, free_port, llm_stub, sse_events

pytestmark = pytest.mark.api


def test_credentials_reach_no_caller_and_no_log(
    tmp_path: Path, indexed_docs: dict[str, str]
) -> None:
    log = tmp_path / "api.log"
    stub_running = llm_stub(tmp_path)
    stub = stub_running.__enter__()
    try:
        httpx.post(f"{stub}/_mode", json={"mode": "leaky"}).raise_for_status()
        base = stub.replace("http://", f"http://{USERINFO}@")
        env = openai_env(indexed_docs, base, max_retries="0", timeout_s="5")
        with api_server(tmp_path, {**env, "RAG_LOG__FORMAT": "json"}, log=log) as api:
            body = assert_problem(httpx.post(f"{api}/v1/ask", json={"question": QUESTION}), 502)
            assert "answered 500" in body["detail"]
            assert_no_secret(body["detail"])

            ask = {"question": QUESTION, "stream": True}
            with httpx.stream("POST", f"{api}/v1/ask", json=ask, timeout=30) as response:
                events = sse_events(response)
            assert events[-1][0] == "error" and events[-1][1]["status"] == 502
            assert_no_secret(str(events[-1][1]))

            stub_running.__exit__(None, None, None)  # the endpoint is gone now
            stub_running = None
            ready = assert_problem(httpx.get(f"{api}/readyz"), 503)
            assert "cannot reach the LLM at http://127.0.0.1:" in ready["detail"]
            assert_no_secret(str(ready))
            body = assert_problem(httpx.post(f"{api}/v1/ask", json={"question": QUESTION}), 502)
            assert "cannot reach the LLM at http://127.0.0.1:" in body["detail"]
            assert_no_secret(body["detail"])
        assert "answered 500" in log.read_text()  # the operator still learns what happened
        assert_no_secret(log.read_text())

        with api_server(tmp_path, {**env, "RAG_LLM__FALLBACK": "true"}) as api:
            body = httpx.post(f"{api}/v1/ask", json={"question": QUESTION}).json()
            assert body["generator"]["backend"] == "extractive"
            assert "cannot reach the LLM" in body["generator"]["fallback_reason"]
            assert_no_secret(str(body))
    finally:
        if stub_running is not None:
            stub_running.__exit__(None, None, None)


def test_a_key_beside_url_credentials_stops_the_server_with_a_clear_error(
    tmp_path: Path, indexed_docs: dict[str, str]
) -> None:
    base = f"http://{USERINFO}@127.0.0.1:{free_port()}"
    env = openai_env(indexed_docs, base, api_key=KEY)
    argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(free_port())]
    done = subprocess.run(
        argv, env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "only one credential fits the Authorization header" in done.stderr
    assert_no_secret(done.stderr + done.stdout)

"""The HTTP API over a real uvicorn process, the way users call it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.reindex import reindex
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.settings import Settings
from tests.conftest import CountingEmbedder
from tests.servers import api_server, sse_events

pytestmark = pytest.mark.api

ALPACAS = "# Alpacas\n\nAlpacas are bred for their soft fleece.\n"
EMBEDDINGS = "# 嵌入\n\n嵌入把文本映射成向量，语义相近的文本向量也相近。\n"


@dataclass
class Server:
    url: str
    settings: Settings
    log: Path  # the server's stderr: JSON lines


def start_server(root: Path, docs: Path) -> Iterator[Server]:
    settings = Settings(_env_file=None, data_dir=root / "data", corpus_dir=docs)  # type: ignore[call-arg]
    env = {"RAG_DATA_DIR": str(settings.data_dir), "RAG_CORPUS_DIR": str(docs)}
    log = root / "api.log"
    with api_server(root, env, log=log) as url:
        yield Server(url, settings, log)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> Iterator[Server]:
    """A server over two documents, indexed once (generation 1) before it starts; the tests
    that share it only read."""
    root = tmp_path_factory.mktemp("api")
    docs = root / "docs"
    docs.mkdir()
    (docs / "alpaca.md").write_text(ALPACAS)
    (docs / "嵌入.md").write_text(EMBEDDINGS)
    settings = Settings(_env_file=None, data_dir=root / "data", corpus_dir=docs)  # type: ignore[call-arg]
    reindex(settings, embedder=real_embedder)
    yield from start_server(root, docs)


@pytest.fixture
def empty_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, started before any index exists, for a test that reindexes."""
    docs = tmp_path / "docs"
    docs.mkdir()
    yield from start_server(tmp_path, docs)


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_malformed_requests_get_problem_details(server: Server) -> None:
    url = f"{server.url}/v1/search"
    assert_problem(
        httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    body = assert_problem(httpx.post(url, json={"query": "   "}), 422)
    assert body["errors"][0]["loc"] == ["body", "query"]
    assert body["type"] == "urn:rag-service:problem:invalid-request"
    assert_problem(httpx.post(url, json={"query": "x", "top_k": 0}), 422)
    assert_problem(httpx.post(url, json={"query": "x", "unknown": 1}), 422)
    assert_problem(httpx.post(url, json={}), 422)
    assert assert_problem(httpx.get(f"{server.url}/v1/nothing-here"), 404)["type"] == "about:blank"


def log_lines(server: Server) -> list[dict]:
    return [json.loads(line) for line in server.log.read_text().splitlines()]


def test_request_id_is_echoed_and_logged(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/nothing", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"
    # Only plain ids are taken up (they go into every log line); others are replaced.
    for offered in ('{"level": "ERROR"}', "x" * 200):
        response = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": offered})
        assert len(response.headers["x-request-id"]) == 32 != len(offered)

    # The server was started with no terminal: every line of its log is a JSON object, and the
    # access line of a request carries its id.
    lines = log_lines(server)
    uvicorn = [line for line in lines if line["logger"] == "uvicorn.error"]  # its own, as JSON
    assert uvicorn and not any("color_message" in line for line in uvicorn)
    [access] = [line for line in lines if line.get("request_id") == "abc-123"]
    assert access["logger"] == "rag_service.access" and access["level"] == "INFO"
    assert access["path"] == "/v1/nothing" and access["status"] == 404
    assert access["method"] == "GET" and isinstance(access["duration_ms"], float)


def test_serves_each_new_generation_without_restart(
    empty_server: Server, embedder: CountingEmbedder
) -> None:
    server = empty_server
    docs = server.settings.corpus_dir
    search = f"{server.url}/v1/search"

    # Before any index: alive, but not ready to search.
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    no_index = assert_problem(httpx.post(search, json={"query": "hello"}), 503)
    assert "rag reindex" in no_index["detail"]
    assert no_index["type"] == "urn:rag-service:problem:index-not-ready"
    assert_problem(httpx.get(f"{server.url}/v1/index"), 503)
    not_ready = assert_problem(httpx.get(f"{server.url}/readyz"), 503)
    assert not_ready["detail"].startswith("not ready; index: no index has been built yet")
    assert not_ready["type"] == "urn:rag-service:problem:not-ready"
    assert not_ready["checks"]["index"]["ok"] is False
    assert not_ready["checks"]["store"]["ok"] is None  # not checked without an index
    assert not_ready["checks"]["llm"] == {"ok": True, "detail": "extractive (sentence-selection)"}

    (docs / "llama.md").write_text("# Llamas\n\nLlamas are domesticated South American camelids.\n")
    (docs / "嵌入.md").write_text(EMBEDDINGS)
    reindex(server.settings, embedder=embedder)

    response = httpx.post(
        search, json={"query": "Which animals live in South America?", "top_k": 2}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["generation"] == 1
    top = body["passages"][0]
    assert top["source"] == "llama.md" and top["title"] == "Llamas"
    assert top["text"] == "# Llamas\n\nLlamas are domesticated South American camelids."
    assert (docs / "llama.md").read_text()[top["start"] : top["end"]] == top["text"]
    assert top["detail"]["dense_rank"] == 1 and top["detail"]["bm25_rank"] == 1
    assert top["detail"]["fused_score"] == top["score"] and top["detail"]["rerank_score"] is None
    assert body["language"] == "en"
    assert set(body["timings_ms"]) == {"bm25", "dense", "fusion", "rerank_and_fetch", "total"}

    zh = httpx.post(search, json={"query": "什麼是嵌入？", "top_k": 1}).json()  # Traditional script
    assert zh["language"] == "zh" and zh["passages"][0]["source"] == "嵌入.md"
    filtered = httpx.post(
        search, json={"query": "South American camelids", "filters": {"sources": ["嵌入.md"]}}
    ).json()
    assert [p["source"] for p in filtered["passages"]] == ["嵌入.md"]

    # A reindex by another writer is picked up on the next request: new text found, old gone.
    (docs / "llama.md").unlink()
    (docs / "alpaca.md").write_text(ALPACAS)
    reindex(server.settings, embedder=embedder)

    body = httpx.post(search, json={"query": "soft fleece animals", "top_k": 5}).json()
    assert body["generation"] == 2
    sources = [p["source"] for p in body["passages"]]
    assert sources[0] == "alpaca.md" and "llama.md" not in sources
    index = httpx.get(f"{server.url}/v1/index").json()
    assert index["generation"] == 2 and index["sources"] == 2
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["index"] == {"ok": True, "detail": "generation 2"}
    assert ready.json()["checks"]["store"]["ok"] is True
    after = metric_samples(server.url)
    for state in ("served", "committed"):
        assert after[("rag_index_generation", frozenset({("state", state)}))] == 2
    assert after[("rag_index_loads", frozenset())] == 2  # one load per reindex followed


def metric_samples(url: str) -> dict[tuple[str, frozenset], float]:
    """/metrics parsed by prometheus_client's own parser: (name, labels) -> value."""
    response = httpx.get(f"{url}/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_ask_answers_with_citations_and_streams(server: Server) -> None:
    """The default answerer is the extractive one, so this works with no model configured."""
    ask = f"{server.url}/v1/ask"
    body = httpx.post(ask, json={"question": "What are alpacas bred for?"}).json()
    assert body["answerable"] is True and body["language"] == "en"
    assert body["answer"] == "Alpacas are bred for their soft fleece. [1]"
    assert body["generator"]["backend"] == "extractive"
    [citation] = body["citations"]
    assert citation["source"] == "alpaca.md" and citation["n"] == 1
    text = (server.settings.corpus_dir / "alpaca.md").read_text()
    assert text[citation["start"] : citation["end"]] == citation["quote"]
    assert body["passages"][0]["chunk_id"] == citation["chunk_id"]
    assert set(body["timings_ms"]) == {"retrieve", "rerank", "judge", "generate", "total"}
    assert body["timings_ms"]["judge"] == 0 and body["decided_by"] == "rule"  # judge: off

    with httpx.stream("POST", ask, json={"question": "什么是嵌入？", "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "passages" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"delta"}
    done = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == done["answer"]
    assert done["language"] == "zh" and done["citations"][0]["source"] == "嵌入.md"
    assert events[0][1]["passages"][0]["source"] == "嵌入.md"


def test_ask_rejects_malformed_requests(server: Server) -> None:
    ask = f"{server.url}/v1/ask"
    assert_problem(httpx.post(ask, json={"question": " "}), 422)
    assert_problem(httpx.post(ask, json={"question": "x", "top_k": 50}), 422)
    assert_problem(httpx.post(ask, json={"question": "x", "temperature": -1}), 422)
    body = assert_problem(
        httpx.post(ask, json={"question": "x", "history": [{"role": "system", "content": "y"}]}),
        422,
    )
    assert body["errors"][0]["loc"][:2] == ["body", "history"]


def test_metrics_count_requests_stages_and_the_index(server: Server) -> None:
    before = metric_samples(server.url)
    search_route = {("method", "POST"), ("route", "/v1/search"), ("status", "200")}
    searches = before.get(("rag_http_requests_total", frozenset(search_route)), 0)
    httpx.post(f"{server.url}/v1/search", json={"query": "alpaca fleece"})
    httpx.post(f"{server.url}/v1/ask", json={"question": "What are alpacas bred for?"})
    httpx.post(f"{server.url}/v1/ask", json={"question": "Who won the 1998 World Cup?"})
    httpx.get(f"{server.url}/v1/no/such/path/123")

    after = metric_samples(server.url)
    assert after[("rag_http_requests_total", frozenset(search_route))] == searches + 1
    # Unknown paths share one label, so scanners cannot create series.
    unmatched = {("method", "GET"), ("route", "<unmatched>"), ("status", "404")}
    assert after[("rag_http_requests_total", frozenset(unmatched))] >= 1
    assert not any("/v1/no/such" in str(labels) for _, labels in after)
    latency = (
        "rag_http_request_duration_seconds_count",
        frozenset(search_route - {("status", "200")}),
    )
    assert after[latency] == before.get(latency, 0) + 1
    for stage in ("bm25", "dense", "fusion", "rerank"):  # searches made by /v1/ask count too
        key = ("rag_stage_duration_seconds_count", frozenset({("stage", stage)}))
        assert after[key] == before.get(key, 0) + 3
    for outcome in ("answered", "refused"):
        key = ("rag_answers_total", frozenset({("outcome", outcome)}))
        assert after[key] == before.get(key, 0) + 1
    generate = ("rag_stage_duration_seconds_count", frozenset({("stage", "generate")}))
    assert after[generate] == before.get(generate, 0) + 1  # the refusal asked no model
    for state in ("served", "committed"):
        assert after[("rag_index_generation", frozenset({("state", state)}))] == 1
    assert after[("rag_index_sources", frozenset())] == 2
    assert after[("rag_index_loads", frozenset())] == 1  # loaded at start, no reindex since


def test_a_follow_up_is_searched_standalone_and_says_so(server: Server) -> None:
    first = {"question": "What is an alpaca?"}
    answer = httpx.post(f"{server.url}/v1/ask", json=first).json()["answer"]
    history = [
        {"role": "user", "content": first["question"]},
        {"role": "assistant", "content": answer},
    ]
    body = {"question": "What is it bred for?", "history": history}
    reply = httpx.post(f"{server.url}/v1/ask", json=body).json()
    assert reply["question"] == "What is it bred for?"
    assert reply["standalone_question"] == "What is it bred for? (alpaca)"
    assert reply["answerable"] and reply["citations"][0]["source"] == "alpaca.md"
    logged = [
        line["message"]
        for line in log_lines(server)
        if line["logger"] == "rag_service.conversation"
    ]
    assert any("'What is it bred for? (alpaca)'" in message for message in logged)

    # The stream says what it searched as soon as it has searched it.
    with httpx.stream("POST", f"{server.url}/v1/ask", json={**body, "stream": True}) as response:
        events = dict(sse_events(response))
    assert events["passages"]["standalone_question"] == reply["standalone_question"]
    assert events["done"]["standalone_question"] == reply["standalone_question"]

    # A chat client sends the conversation as messages: the same standalone question.
    messages = [*history, {"role": "user", "content": "What is it bred for?"}]
    chat = {"model": "rag", "messages": messages}
    completion = httpx.post(f"{server.url}/v1/chat/completions", json=chat).json()
    assert completion["standalone_question"] == reply["standalone_question"]
    assert completion["sources"][0]["source"] == "alpaca.md"

    # A question that stands on its own is searched as it is, history or not.
    alone = {"question": "什么是嵌入？", "history": history}
    assert (
        httpx.post(f"{server.url}/v1/ask", json=alone).json()["standalone_question"]
        == "什么是嵌入？"
    )

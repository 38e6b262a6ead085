"""Bounded requests over a real `rag serve` (issue #12, findings 5 and 6; issue #21, item 8):
Host allow-list, body size, body and header deadlines (raw sockets, so nothing is buffered by a
client library), filter sizes, the whole-request timeout, the bounded answer queue, CORS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx
import pytest

from tests.api.test_ask_llm import openai_env
from tests.api.test_http import assert_problem
from tests.servers import api_process, llm_stub

pytestmark = pytest.mark.api

BODY_TIMEOUT_S = 2
HEADER_TIMEOUT_S = 2
REQUEST_TIMEOUT_S = 3
# Bounds with wide margins for a loaded 2-core machine; the code enforces the tighter ones above.
MARGIN_S = 20


@dataclass
class Api:
    url: str
    proc: Popen[bytes]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("limits")
    env = {
        **indexed_docs,
        "RAG_API__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "RAG_API__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "RAG_API__CORS_ORIGINS": '["https://app.example"]',
    }
    with api_process(root, env) as (url, proc):
        yield Api(url, proc)


def rss_kib(proc: Popen[bytes]) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_exchange(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[bytes, float]:
    """Send ``head`` and then chunks while the server reads; everything it answered, and how long
    until it closed the connection (it must, or this times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=MARGIN_S) as sock:
        started = time.monotonic()
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed, as it should
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except ConnectionResetError:
            pass
        return received, time.monotonic() - started


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def post_head(port: int, extra: str) -> bytes:
    return (
        f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_foreign_host_is_refused(api: Api) -> None:
    with httpx.Client() as client:
        refused = client.get(f"{api.url}/v1/index", headers={"Host": "attacker.example"})
        assert_problem(refused, 400)
        assert "attacker.example" in refused.json()["detail"]
        for host in ("localhost", f"localhost:{api.port}", "127.0.0.1", "[::1]:8000"):
            assert client.get(f"{api.url}/v1/index", headers={"Host": host}).status_code == 200


def test_an_announced_huge_body_gets_413_unread(api: Api) -> None:
    head = post_head(api.port, "Content-Length: 10000000000\r\n")
    answer, _ = raw_exchange(api.port, head, iter([b"x" * 1024]))
    assert status_of(answer) == 413
    assert b"application/problem+json" in answer and b"connection: close" in answer.lower()


def test_a_chunked_body_over_the_limit_gets_413_without_growing_memory(api: Api) -> None:
    before = rss_kib(api.proc)
    head = post_head(api.port, "Transfer-Encoding: chunked\r\n")
    piece = b"[" + b'"aaaaaaaa",' * 6000  # ~66 KB per chunk, 20 MB in all
    chunks = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(300))
    answer, _ = raw_exchange(api.port, head, chunks)
    assert status_of(answer) == 413
    # The server read about 1 MiB of the 20 MB, and kept none of it.
    assert rss_kib(api.proc) - before < 10 * 1024


def test_a_body_that_never_arrives_gets_408_within_the_deadline(api: Api) -> None:
    head = post_head(api.port, "Content-Length: 500000\r\n")
    answer, seconds = raw_exchange(api.port, head, iter([b"x" * 1024]))
    assert status_of(answer) == 408
    assert seconds < BODY_TIMEOUT_S + MARGIN_S


class SlowClient:
    """A raw connection that sends ``head`` and then one more header byte at each ``trickle()``,
    never finishing; it records what the server answered and when it closed the connection."""

    def __init__(self, port: int, head: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=MARGIN_S)
        self.opened = time.monotonic()
        if head:
            self.sock.sendall(head)
        self.sock.setblocking(False)
        self.received = b""
        self.closed_after: float | None = None

    def trickle(self, byte: bytes) -> None:
        self.read()  # first, so an answer is read before a send after the close resets it
        if self.closed_after is None and byte:
            try:
                self.sock.send(byte)
            except (BrokenPipeError, ConnectionResetError):
                self._closed()

    def read(self) -> None:
        while self.closed_after is None:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self._closed()
            self.received += data

    def _closed(self) -> None:
        self.closed_after = time.monotonic() - self.opened
        self.sock.close()


def test_trickled_headers_are_cut_off_while_others_are_served(api: Api) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n".encode()
    tricklers = [SlowClient(api.port, head + b"X-Slow: ") for _ in range(50)]
    stalled = [SlowClient(api.port, head) for _ in range(5)]  # half a head, then nothing
    silent = SlowClient(api.port, b"")  # connects, sends nothing
    everyone = [*tricklers, *stalled, silent]
    deadline = time.monotonic() + HEADER_TIMEOUT_S + MARGIN_S
    served = False
    while time.monotonic() < deadline and any(c.closed_after is None for c in everyone):
        for client in tricklers:
            client.trickle(b"x")
        for client in (*stalled, silent):
            client.read()
        if not served:  # another connection is answered meanwhile
            assert httpx.get(f"{api.url}/healthz", timeout=MARGIN_S).status_code == 200
            served = True
        time.sleep(0.2)
    for client in everyone:
        assert client.closed_after is not None, "the server still holds a slow connection"
        # The server's clock starts after the client's connect returned, never before.
        assert client.closed_after >= HEADER_TIMEOUT_S - 0.05
    for client in stalled:  # a head begun and not finished: 408 with a problem body
        assert status_of(client.received) == 408
        assert b"application/problem+json" in client.received
        assert b"did not arrive within 2 s (RAG_API__HEADER_TIMEOUT_S)" in client.received
    assert silent.received == b""  # nothing asked, nothing answered: just closed
    assert all(not c.received or status_of(c.received) == 408 for c in tricklers)


def test_an_endless_header_gets_431_before_its_deadline(api: Api) -> None:
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nX-Big: ".encode()
    # Sent in one go and then nothing more, so the server reads it all before it closes.
    answer, _ = raw_exchange(api.port, head + b"a" * 100_000, iter([]))
    assert status_of(answer) == 431 and b"application/problem+json" in answer
    assert b"the request head exceeds 65536 bytes" in answer
    # A header that ends in time and within the bound is served.
    fine = httpx.get(f"{api.url}/healthz", headers={"X-Big": "a" * 30_000})
    assert fine.status_code == 200


def test_waiting_on_a_kept_alive_connection_is_not_a_slow_head(api: Api) -> None:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", api.port), timeout=MARGIN_S) as sock:
        for _ in range(2):
            sock.sendall(request)
            answer = sock.recv(65536)
            while b'"ok"' not in answer:
                answer += sock.recv(65536)
            assert status_of(answer) == 200
            # Longer than the head's bound, shorter than uvicorn's keep-alive (5 s).
            time.sleep(HEADER_TIMEOUT_S + 1)


def test_filter_lists_are_bounded(api: Api) -> None:
    search = f"{api.url}/v1/search"
    ok = {"query": "attention heads", "filters": {"sources": [f"s{n}.md" for n in range(1000)]}}
    assert httpx.post(search, json=ok).status_code == 200
    too_many = {"query": "attention", "filters": {"sources": [f"s{n}" for n in range(1001)]}}
    assert_problem(httpx.post(search, json=too_many), 422)
    too_long = {"query": "attention", "filters": {"sources": ["a" * 1025]}}
    assert_problem(httpx.post(search, json=too_long), 422)
    assert_problem(
        httpx.post(search, json={"query": "x", "filters": {"source_prefix": "a" * 1025}}), 422
    )


def test_cors_answers_only_the_allowed_origins(api: Api) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = httpx.options(
        f"{api.url}/v1/search", headers={**preflight, "Origin": "https://app.example"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    foreign = httpx.options(
        f"{api.url}/v1/search", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in foreign.headers


@contextmanager
def one_slot_before_a_stub(root: Path, indexed_docs: dict[str, str]) -> Iterator[tuple[str, str]]:
    """One answer slot, a short queue and a short request timeout, before a stub LLM."""
    with llm_stub(root) as stub:
        env = {
            **openai_env(indexed_docs, stub, timeout_s="90", max_retries="0"),
            "RAG_API__MAX_CONCURRENT_ANSWERS": "1",
            "RAG_API__ANSWER_QUEUE_TIMEOUT_S": "1",
            "RAG_API__REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
        }
        with api_process(root, env) as (url, _):
            yield url, stub


@pytest.fixture(scope="module")
def slow_llm(
    tmp_path_factory: pytest.TempPathFactory, indexed_docs: dict[str, str]
) -> Iterator[tuple[str, str]]:
    with one_slot_before_a_stub(tmp_path_factory.mktemp("slow-llm"), indexed_docs) as servers:
        yield servers


QUESTION = {"question": "How many heads did the original transformer use?"}


def test_cors_is_off_by_default(slow_llm: tuple[str, str]) -> None:
    api, _ = slow_llm
    preflight = httpx.options(
        f"{api}/v1/search",
        headers={"Access-Control-Request-Method": "POST", "Origin": "https://app.example"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_answers_beyond_the_slots_queue_then_get_503_with_retry_after(
    slow_llm: tuple[str, str],
) -> None:
    api, stub = slow_llm
    httpx.post(f"{stub}/_mode", json={"mode": "trickle"}).raise_for_status()
    first_delta = threading.Event()
    hang_up = threading.Event()

    def hold_the_slot() -> None:
        with httpx.stream("POST", f"{api}/v1/ask", json={**QUESTION, "stream": True}) as resp:
            for line in resp.iter_lines():
                if line.startswith("event: delta"):
                    first_delta.set()
                    hang_up.wait(MARGIN_S)
                    return

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        assert first_delta.wait(MARGIN_S)
        busy = httpx.post(f"{api}/v1/ask", json=QUESTION, timeout=MARGIN_S)
        assert_problem(busy, 503)
        assert int(busy.headers["retry-after"]) >= 1
        # Searches take no answer slot.
        assert httpx.post(f"{api}/v1/search", json={"query": "heads"}).status_code == 200
    finally:
        hang_up.set()
        holder.join(MARGIN_S)


def test_a_response_that_does_not_begin_in_time_gets_504(
    tmp_path: Path, indexed_docs: dict[str, str]
) -> None:
    # Its own server: the timed-out answer goes on in its thread, holding the one answer slot
    # until the stub replies (30 s), which would refuse the next test's answers.
    with one_slot_before_a_stub(tmp_path, indexed_docs) as (api, stub):
        httpx.post(f"{stub}/_mode", json={"mode": "slow"}).raise_for_status()  # 30 s, then answers
        started = time.monotonic()
        late = httpx.post(f"{api}/v1/ask", json=QUESTION, timeout=MARGIN_S + 30)
        assert_problem(late, 504)
        assert "RAG_API__REQUEST_TIMEOUT_S" in late.json()["detail"]
        assert time.monotonic() - started < REQUEST_TIMEOUT_S + MARGIN_S

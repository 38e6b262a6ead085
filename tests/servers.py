"""Real servers on loopback, started and stopped by the tests: the API, llama.cpp's server and
the misbehaving LLM stub."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    args: list[str],
    probe_url: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    wait_s: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``python <args>``, wait until ``probe_url`` answers 200, stop it afterwards."""
    log = cwd / f"server-{Path(args[-1]).name}-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if httpx.get(probe_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{args} did not start: {log.read_text()}"
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def api_server(root: Path, env: dict[str, str]) -> Iterator[str]:
    """``rag serve`` on a free port with these settings (RAG_* variables); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(
        ["-m", "rag_service.cli", "serve", "--port", str(port)], f"{url}/healthz", root, env
    ):
        yield url


@contextmanager
def llm_stub(root: Path) -> Iterator[str]:
    """The misbehaving OpenAI-compatible server of tests/llm_stub.py; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    repo = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(repo)}
    with running(["-m", "tests.llm_stub", "--port", str(port)], f"{url}/v1/models", root, env):
        yield url


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a Server-Sent Events response, in order."""
    import json

    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
            name = "message"
    return events

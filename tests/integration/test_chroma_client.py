"""The Chroma server client's edges that a real server cannot show: a server that accepts the
connection and never answers, and the token it is sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import SecretStr

from rag_service.errors import StoreUnavailable
from rag_service.settings import StoreSettings
from rag_service.stores.chroma import http_client

pytestmark = pytest.mark.integration


@contextmanager
def silent_server() -> Iterator[tuple[int, list[bytes]]]:
    """Accepts connections and reads requests but never replies; yields (port, requests)."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        held = []
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            received.append(conn.recv(65536))
        for conn in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join()
        listener.close()


def headers_of(request: bytes) -> dict[str, str]:
    lines = request.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}


@pytest.mark.parametrize(
    ("header", "value"), [("Authorization", "Bearer s3cret"), ("X-Chroma-Token", "s3cret")]
)
def test_a_silent_server_fails_within_the_timeout_and_got_the_token(
    header: str, value: str
) -> None:
    with silent_server() as (port, received):
        settings = StoreSettings(
            chroma_port=port,
            chroma_timeout_s=0.5,
            chroma_auth_token=SecretStr("s3cret"),
            chroma_auth_header=header,  # type: ignore[arg-type]
        )
        with pytest.raises(
            StoreUnavailable, match=f"Chroma server at 127.0.0.1:{port} does not"
        ) as caught:
            http_client(settings)
        # The configured timeout ended the wait (a silent server would otherwise hold it for ever).
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert received and all(headers_of(r).get(header.lower()) == value for r in received)


def test_no_token_sends_no_auth_header() -> None:
    with silent_server() as (port, received), pytest.raises(StoreUnavailable):
        http_client(StoreSettings(chroma_port=port, chroma_timeout_s=0.3))
    assert received
    for request in received:
        assert not {"authorization", "x-chroma-token"} & set(headers_of(request))

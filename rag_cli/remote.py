"""A running server, reached over its HTTP API: where it is, a client that carries the key, and
its errors as the CLI reports them.

``rag docs`` always goes through it (the server applies every write through its one job queue,
in order); ``rag ask`` and ``rag search`` do when a server answers, since it has the model loaded
already (about 6 s per call otherwise, loading it in-process).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import typer

from rag_service.settings import ApiSettings

URL_VARIABLE = "RAG_URL"
KEY_VARIABLE = "RAG_API_KEY"
PROBE_TIMEOUT_S = 1.0


def configured_url(api: ApiSettings) -> str:
    """``RAG_URL``, else the address ``rag serve`` binds with these settings (a server that
    binds every address is reached on loopback)."""
    if explicit := os.environ.get(URL_VARIABLE):
        return explicit.rstrip("/")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(api.host, api.host)
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    return f"http://{host}:{api.port}"


@contextmanager
def session(url: str) -> Iterator[httpx.Client]:
    """A client for the server at ``url`` with the key from ``RAG_API_KEY``; exit 2 with the
    reason when the server cannot be reached."""
    key = os.environ.get(KEY_VARIABLE, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60.0) as client:
        try:
            yield client
        except httpx.TransportError as exc:
            typer.echo(f"error: cannot reach the server at {url}: {exc}", err=True)
            raise typer.Exit(2) from exc


def answering_server(api: ApiSettings) -> str | None:
    """The server to ask: ``RAG_URL`` when set (used even if it is down, so the error says so),
    else the configured address if a server answers there, else None (work in-process)."""
    url = configured_url(api)
    if os.environ.get(URL_VARIABLE):
        return url
    try:
        healthy = httpx.get(f"{url}/healthz", timeout=PROBE_TIMEOUT_S).status_code == 200
    except httpx.HTTPError:
        return None
    return url if healthy else None


def checked(response: httpx.Response) -> Any:
    """The response's JSON, or exit 2 with the server's reason (its problem ``detail``)."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    typer.echo(f"error: {response.status_code}: {detail}", err=True)
    raise typer.Exit(2)

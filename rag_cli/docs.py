"""``rag docs``: a running server's collections and documents, over its HTTP API.

The same routes the page and any client use (``/v1/collections/...``), so the server applies
every write through its one job queue, in order; the key comes from ``RAG_API_KEY``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

app = typer.Typer(help="Collections and documents of a running server (its HTTP API).")

UrlOption = Annotated[
    str, typer.Option("--url", envvar="RAG_URL", help="The server (default: RAG_URL).")
]
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="The collection.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def _client(url: str) -> httpx.Client:
    key = os.environ.get("RAG_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60.0)


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    typer.echo(f"error: {response.status_code}: {detail}", err=True)
    raise typer.Exit(2)


def _wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    while job["state"] in ("queued", "running"):
        time.sleep(0.5)
        job = _checked(client.get(f"/v1/jobs/{job['id']}"))
    return job


def _report(job: dict[str, Any], wait: bool) -> None:
    typer.echo(json.dumps(job, ensure_ascii=False, indent=2) if wait else job["id"])
    if job["state"] == "failed":
        raise typer.Exit(1)


@app.command("collections")
def list_collections(url: UrlOption = DEFAULT_URL) -> None:
    """Each collection: kind, documents, chunks, generation."""
    with _client(url) as client:
        found = _checked(client.get("/v1/collections"))["collections"]
    for c in found:
        typer.echo(
            f"{c['name']:<24}{c['kind']:<10}{c['documents']:>6} documents{c['chunks']:>8} chunks"
            f"  generation {c['generation']}"
        )


@app.command("create")
def create_collection(name: str, url: UrlOption = DEFAULT_URL) -> None:
    """Make a managed collection (nothing happens if it exists)."""
    with _client(url) as client:
        _checked(client.put(f"/v1/collections/{quote(name)}"))


@app.command("drop")
def drop_collection(name: str, url: UrlOption = DEFAULT_URL) -> None:
    """Delete a collection's index (and a managed one's documents)."""
    with _client(url) as client:
        _checked(client.delete(f"/v1/collections/{quote(name)}"))


@app.command("list")
def list_documents(collection: CollectionOption = "default", url: UrlOption = DEFAULT_URL) -> None:
    """The collection's documents: path, chunks, bytes, encoding, last error."""
    with _client(url) as client:
        found = _checked(client.get(f"/v1/collections/{quote(collection)}/documents"))
    for d in found["documents"]:
        error = f"  failed: {d['error']}" if d["error"] else ""
        typer.echo(f"{d['path']:<48}{d['chunks']:>5} chunks{d['bytes'] or 0:>10} bytes{error}")


@app.command("add")
def add_documents(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    collection: CollectionOption = "default",
    url: UrlOption = DEFAULT_URL,
    wait: Annotated[bool, typer.Option(help="Wait for the job and print it.")] = True,
) -> None:
    """Upload files (named by their file names); print the job when it is done."""
    handles = [path.open("rb") for path in files]
    try:
        parts = [
            ("files", (path.name, handle)) for path, handle in zip(files, handles, strict=True)
        ]
        with _client(url) as client:
            job = _checked(
                client.post(f"/v1/collections/{quote(collection)}/documents", files=parts)
            )
            if wait:
                job = _wait(client, job)
    finally:
        for handle in handles:
            handle.close()
    _report(job, wait)


@app.command("rm")
def remove_document(
    path: Annotated[str, typer.Argument(help="The document's path in the collection.")],
    collection: CollectionOption = "default",
    url: UrlOption = DEFAULT_URL,
    wait: Annotated[bool, typer.Option(help="Wait for the job and print it.")] = True,
) -> None:
    """Delete a document; print the job when it is done."""
    with _client(url) as client:
        job = _checked(
            client.delete(f"/v1/collections/{quote(collection)}/documents/{quote(path)}")
        )
        if wait:
            job = _wait(client, job)
    _report(job, wait)

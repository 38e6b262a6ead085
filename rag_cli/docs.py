"""``rag docs``: a running server's collections and documents, over its HTTP API.

The same routes the page and any client use (``/v1/collections/...``), so the server applies
every write through its one job queue, in order (``remote.py``: where the server is, the key).
Tables for people; ``--json`` prints what the server answered, for scripts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.table import Table

from rag_cli import remote
from rag_service.settings import Settings

app = typer.Typer(help="Collections and documents of a running server (its HTTP API).")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The server (default: RAG_URL, else http://RAG_API__HOST:RAG_API__PORT).",
        show_default=False,
    ),
]
CollectionOption = Annotated[str, typer.Option("--collection", "-c", help="The collection.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON.")]
WaitOption = Annotated[bool, typer.Option(help="Wait for the job and print its outcome.")]


def _url(url: str | None) -> str:
    return url.rstrip("/") if url else remote.configured_url(Settings().api)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _table(*columns: str) -> Table:
    """Cells wrap rather than end in "…" in a narrow terminal: a cut path names no document."""
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print_table(table: Table) -> None:
    Console(soft_wrap=False).print(table)


def _wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    while job["state"] in ("queued", "running"):
        time.sleep(0.5)
        job = remote.checked(client.get(f"/v1/jobs/{job['id']}"))
    return job


def _report(job: dict[str, Any], wait: bool, as_json: bool) -> None:
    if as_json:
        _print_json(job)
    elif not wait:
        typer.echo(job["id"])
    else:
        typer.echo(_outcome(job))
        for failure in (job.get("result") or {}).get("failed", []):
            typer.echo(f"  failed  {failure['path']}: {failure['error']}")
    if job["state"] in ("failed", "cancelled"):  # neither did what was asked
        raise typer.Exit(1)


def _outcome(job: dict[str, Any]) -> str:
    """One line: what the job did, in the words of ``rag reindex``."""
    head = f"job {job['id']} {job['state']}"
    result = job.get("result")
    if not result:
        return f"{head}: {job['error']}" if job.get("error") else head
    files = ", ".join(
        f"{result[k]} {k}" for k in ("added", "updated", "deleted", "unchanged") if result[k]
    )
    failed = len(result["failed"])
    chunks = result["chunks"]
    return (
        f"{head}: {files or 'nothing changed'}"
        + (f", {failed} failed" if failed else "")
        + f"; {_count(chunks['embedded'], 'chunk')} embedded, {chunks['total']} in the collection"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@app.command("collections")
def list_collections(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Each collection: kind, documents, chunks, index generation."""
    with remote.session(_url(url)) as client:
        found = remote.checked(client.get("/v1/collections"))
    if as_json:
        _print_json(found)
        return
    table = _table("collection", "kind", "writable", "documents", "chunks", "index")
    for c in found["collections"]:
        index = (
            f"generation {c['generation']}, {c['committed_at']}"
            if c["generation"] is not None
            else "not indexed yet"
        )
        writable = "yes" if c["writable"] else "no"
        table.add_row(c["name"], c["kind"], writable, str(c["documents"]), str(c["chunks"]), index)
    _print_table(table)


@app.command("create")
def create_collection(name: str, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Make a managed collection (nothing happens if it exists)."""
    with remote.session(_url(url)) as client:
        response = client.put(f"/v1/collections/{quote(name, safe='')}")
        made = remote.checked(response)
    if as_json:
        _print_json(made)
    else:
        verb = "created" if response.status_code == 201 else "already exists:"
        typer.echo(f"{verb} {made['kind']} collection {made['name']!r}")


@app.command("drop")
def drop_collection(name: str, url: UrlOption = None) -> None:
    """Delete a collection's index (and a managed one's documents)."""
    with remote.session(_url(url)) as client:
        remote.checked(client.delete(f"/v1/collections/{quote(name, safe='')}"))
    typer.echo(f"deleted collection {name!r}")


@app.command("list")
def list_documents(
    collection: CollectionOption = "default", url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """The collection's documents: path, chunks, bytes, encoding, when indexed, last error."""
    with remote.session(_url(url)) as client:
        found = remote.checked(
            client.get(f"/v1/collections/{quote(collection, safe='')}/documents")
        )
    if as_json:
        _print_json(found)
        return
    table = _table("path", "chunks", "bytes", "encoding", "indexed", "error")
    for d in found["documents"]:
        table.add_row(
            d["path"],
            str(d["chunks"]),
            "" if d["bytes"] is None else str(d["bytes"]),
            d["encoding"] or "",
            d["indexed_at"] or "",
            d["error"] or "",
        )
    _print_table(table)


@app.command("add")
def add_documents(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    collection: CollectionOption = "default",
    url: UrlOption = None,
    wait: WaitOption = True,
    as_json: JsonOption = False,
) -> None:
    """Upload files (named by their file names); print what the job did when it is done."""
    handles = [path.open("rb") for path in files]
    try:
        parts = [
            ("files", (path.name, handle)) for path, handle in zip(files, handles, strict=True)
        ]
        with remote.session(_url(url)) as client:
            job = remote.checked(
                client.post(f"/v1/collections/{quote(collection, safe='')}/documents", files=parts)
            )
            if wait:
                job = _wait(client, job)
    finally:
        for handle in handles:
            handle.close()
    _report(job, wait, as_json)


@app.command("rm")
def remove_document(
    path: Annotated[str, typer.Argument(help="The document's path in the collection.")],
    collection: CollectionOption = "default",
    url: UrlOption = None,
    wait: WaitOption = True,
    as_json: JsonOption = False,
) -> None:
    """Delete a document; print what the job did when it is done."""
    with remote.session(_url(url)) as client:
        job = remote.checked(
            client.delete(f"/v1/collections/{quote(collection, safe='')}/documents/{quote(path)}")
        )
        if wait:
            job = _wait(client, job)
    _report(job, wait, as_json)

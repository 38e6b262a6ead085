"""The `rag` CLI against a real server, as a user runs it: `rag docs` prints tables (and the
server's JSON with --json); `rag search` and `rag ask` go to a running server when RAG_URL is
set or one answers on the configured port, and load the model themselves otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner, Result

from rag_cli.commands import app
from tests.servers import api_server, free_port

pytestmark = pytest.mark.api

GLACIER = (
    "# Glaciers\n\nThe Aletsch glacier is the largest glacier in the Alps, about 23 kilometres "
    "long, flowing from the Jungfrau region towards the Rhône valley.\n"
)


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on an empty data folder, as after `make run` with an empty corpus: nothing is
    indexed yet. Keys are off (loopback)."""
    root = tmp_path_factory.mktemp("cli-remote")
    (root / "corpus").mkdir()
    env = {"RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(root / "corpus")}
    with api_server(root, env) as url:
        yield url


def run(*args: str, env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def elsewhere(tmp_path: Path) -> dict[str, str | None]:
    """A CLI whose own data folder holds no index and whose configured port has no server, so
    anything it finds came from the server it was pointed at."""
    return {
        "RAG_DATA_DIR": str(tmp_path / "empty-data"),
        "RAG_API__PORT": str(free_port()),
        "RAG_URL": None,
    }


def test_rag_docs_prints_tables_and_json(
    fresh_server: str, elsewhere: dict[str, str | None], tmp_path: Path
) -> None:
    env = {**elsewhere, "RAG_URL": fresh_server}
    listed = run("docs", "collections", env=env)
    assert listed.exit_code == 0, listed.output
    assert "default" in listed.stdout and "not indexed yet" in listed.stdout
    assert "None" not in listed.stdout and "{" not in listed.stdout

    made = run("docs", "create", "alps", env=env)
    assert made.exit_code == 0 and "created managed collection 'alps'" in made.stdout
    (tmp_path / "glacier.md").write_text(GLACIER, encoding="utf-8")
    added = run("docs", "add", str(tmp_path / "glacier.md"), "-c", "alps", env=env)
    assert added.exit_code == 0, added.output
    assert " done: 1 added; 1 chunk embedded, 1 in the collection" in added.stdout

    table = run("docs", "list", "-c", "alps", env=env)
    row = next(line for line in table.stdout.splitlines() if "glacier.md" in line)
    assert "utf-8" in row and str(len(GLACIER.encode())) in row
    narrow = run("docs", "list", "-c", "alps", env={**env, "COLUMNS": "60"}).stdout
    assert "…" not in narrow and "glac" in narrow  # wrapped, never cut short
    documents = json.loads(run("docs", "list", "-c", "alps", "--json", env=env).stdout)
    assert documents["documents"][0]["encoding"] == "utf-8"
    collections = json.loads(run("docs", "collections", "--json", env=env).stdout)
    alps = next(c for c in collections["collections"] if c["name"] == "alps")
    assert alps["documents"] == 1 and alps["generation"] is not None

    job = json.loads(run("docs", "rm", "glacier.md", "-c", "alps", "--json", env=env).stdout)
    assert job["state"] == "done" and job["result"]["deleted"] == 1
    refused = run("docs", "rm", "never.md", "-c", "alps", env=env)
    assert refused.exit_code == 2 and "404" in refused.stderr


def test_rag_docs_does_not_write_into_the_mirrored_default(
    fresh_server: str, elsewhere: dict[str, str | None], tmp_path: Path
) -> None:
    """`default` mirrors the user's own folder: without -c, an upload says how to go on."""
    env = {**elsewhere, "RAG_URL": fresh_server}
    (tmp_path / "glacier.md").write_text(GLACIER, encoding="utf-8")
    added = run("docs", "add", str(tmp_path / "glacier.md"), env=env)
    assert added.exit_code == 2 and "403" in added.stderr, added.output
    assert "RAG_API__WRITE_MIRRORED" in added.stderr and "PUT /v1/collections" in added.stderr
    removed = run("docs", "rm", "glacier.md", env=env)
    assert removed.exit_code == 2 and "403" in removed.stderr
    listed = json.loads(run("docs", "list", "--json", env=env).stdout)
    assert listed["documents"] == []


def test_search_and_ask_use_the_server_at_rag_url_or_the_configured_port(
    fresh_server: str, elsewhere: dict[str, str | None], tmp_path: Path
) -> None:
    env = {**elsewhere, "RAG_URL": fresh_server}
    assert run("docs", "create", "glaciers", env=env).exit_code == 0
    (tmp_path / "glacier.md").write_text(GLACIER, encoding="utf-8")
    assert (
        run("docs", "add", str(tmp_path / "glacier.md"), "-c", "glaciers", env=env).exit_code == 0
    )

    found = run("search", "Aletsch glacier", "-c", "glaciers", env=env)
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith("1. [") and "glacier.md (Glaciers)" in found.stdout

    # No RAG_URL: the server answering on RAG_API__HOST:RAG_API__PORT is found.
    port = str(urlparse(fresh_server).port)
    configured = {**elsewhere, "RAG_API__HOST": "127.0.0.1", "RAG_API__PORT": port}
    answered = run("ask", "How long is the Aletsch glacier?", "-c", "glaciers", env=configured)
    assert answered.exit_code == 0, answered.output
    assert "23" in answered.stdout and "[1] glacier.md (Glaciers)" in answered.stdout
    as_json = json.loads(run("ask", "How long is it?", "-c", "glaciers", "--json", env=env).stdout)
    assert {"answer", "citations", "passages"} <= set(as_json)

    # --local loads the model here, and this CLI's own data folder has no index.
    here = run("search", "Aletsch glacier", "-c", "glaciers", "--local", env=configured)
    assert here.exit_code == 2 and "error:" in here.stderr


def test_without_a_server_search_works_in_process(
    indexed_docs: dict[str, str], elsewhere: dict[str, str | None]
) -> None:
    env = {**elsewhere, "RAG_DATA_DIR": indexed_docs["RAG_DATA_DIR"]}
    found = run("search", "BM25 saturation parameter k1", "-k", "2", env=env)
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith("1. [") and "guides/bm25.txt" in found.stdout


def test_a_server_named_by_rag_url_that_is_down_is_an_error(
    elsewhere: dict[str, str | None],
) -> None:
    env = {**elsewhere, "RAG_URL": f"http://127.0.0.1:{free_port()}"}
    for args in (("search", "x"), ("docs", "collections")):
        result = run(*args, env=env)
        assert result.exit_code == 2 and "cannot reach the server" in result.stderr, args

"""The service as a new user runs it: no settings at all, so the data and corpus folders are the
relative defaults (``data``, ``corpus``) under the working directory. Every other API test gives
absolute folders, which is how a relative path compared with a resolved one once broke every
collection for exactly these users."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_collections import accepted, sources, wait_job
from tests.api.test_http import assert_problem
from tests.conftest import DATA
from tests.servers import api_server, free_port, rag_reindex

pytestmark = pytest.mark.api

HERON = "# Herons\n\nThe grey heron stands motionless in shallow water and spears fish.\n"


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder shaped like a fresh clone (a ``corpus/``, nothing else), with no RAG_* folder
    setting in the environment the servers inherit."""
    root = tmp_path / "clone"
    shutil.copytree(DATA / "docs", root / "corpus")
    for name in list(os.environ):
        if name.startswith("RAG_") and name != "RAG_EMBEDDER__BACKEND":
            monkeypatch.delenv(name)
    yield root


def test_collections_work_with_the_relative_default_folders(clone: Path) -> None:
    rag_reindex({}, clone)  # what `make run` does first
    assert (clone / "data" / "CURRENT.json").is_file()
    with api_server(clone, {}) as url:
        created = httpx.put(f"{url}/v1/collections/birds")
        assert created.status_code == 201, created.text
        job = accepted(
            httpx.put(f"{url}/v1/collections/birds/documents/heron.md", content=HERON.encode())
        )
        assert wait_job(url, job)["state"] == "done"
        assert sources(url, "grey heron spears fish", "birds") == ["heron.md"]
        assert "heron.md" not in sources(url, "grey heron spears fish")
        assert (clone / "data/collections/birds/documents/heron.md").read_text() == HERON
        # What `make run` indexed is served, and the default collection still mirrors corpus/.
        assert sources(url, "attention heads")[0] == "attention.md"
        assert httpx.delete(f"{url}/v1/collections/birds").status_code == 204
    assert not (clone / "data/collections/birds").exists()


def test_a_record_an_older_version_left_with_a_relative_folder_still_works(clone: Path) -> None:
    """What the failed create of versions before the fix left: a managed record with its folder
    relative to the working directory, and no generation."""
    root = clone / "data/collections/old"
    (root / "documents").mkdir(parents=True)
    record = {"folder": "data/collections/old/documents", "managed": True, "created_at": ""}
    (root / "collection.json").write_text(json.dumps(record))
    with api_server(clone, {}) as url:
        job = accepted(
            httpx.put(f"{url}/v1/collections/old/documents/heron.md", content=HERON.encode())
        )
        assert wait_job(url, job)["state"] == "done", job
        assert sources(url, "grey heron spears fish", "old") == ["heron.md"]


def test_a_create_that_fails_leaves_no_collection_behind(clone: Path) -> None:
    """Its first (empty) generation cannot be written: the Chroma server is down."""
    env = {"RAG_STORE__BACKEND": "chroma-http", "RAG_STORE__CHROMA_PORT": str(free_port())}
    with api_server(clone, env) as url:
        failed = httpx.put(f"{url}/v1/collections/birds")
        assert_problem(failed, 503)
        listed = httpx.get(f"{url}/v1/collections").json()["collections"]
        assert [c["name"] for c in listed] == ["default"]
        assert_problem(httpx.put(f"{url}/v1/collections/birds/documents/a.md", content=b"x"), 404)
    assert not (clone / "data/collections/birds").exists()

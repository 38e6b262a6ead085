"""Reindexing a folder someone else may have filled: links that leave it, loops, FIFOs,
loaders that raise anything, and files above the size limit. None of them stops the run, each
is reported with its reason, and nothing outside the folder reaches the index."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest import load
from ingest.reindex import reindex
from rag_cli.commands import app
from rag_service.index_state import IndexState
from rag_service.settings import Settings
from tests.conftest import CountingEmbedder
from tests.integration.test_reindex import sources_found

pytestmark = pytest.mark.integration

MakeSettings = Callable[..., Settings]
SECRET = "root:x:0:0:root:/root:/bin/bash zebra quokka nologin daemon"


def indexed_sources(settings: Settings) -> set[str]:
    state = IndexState(settings.data_dir)
    pointer = state.current()
    assert pointer is not None
    return set(state.manifest(pointer))


def test_links_out_of_the_folder_loops_and_fifos_are_skipped(
    make_settings: MakeSettings,
    embedder: CountingEmbedder,
    docs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.txt").write_text(SECRET)
    (outside / "more.md").write_text("# Outside\n\n" + SECRET)
    (docs / "passwd.txt").symlink_to(outside / "passwd.txt")  # a link out, to a file
    (docs / "elsewhere").symlink_to(outside, target_is_directory=True)  # ... to a folder
    (docs / "relative.txt").symlink_to("../outside/passwd.txt")  # ... relative
    (docs / "guides" / "up.md").symlink_to("../../outside/more.md")  # ... from a subfolder
    (docs / "dangling.md").symlink_to(docs / "nowhere.md")
    (docs / "loop-a.md").symlink_to(docs / "loop-b.md")
    (docs / "loop-b.md").symlink_to(docs / "loop-a.md")
    (docs / "self").symlink_to(docs, target_is_directory=True)  # a folder loop
    (docs / "alias.md").symlink_to(docs / "attention.md")  # stays inside: followed
    os.mkfifo(docs / "pipe.txt")  # reading it would block the run forever
    settings = make_settings()

    report = reindex(settings, embedder=embedder)

    skipped = {s.path: s.reason for s in report.skipped}
    assert skipped == {
        "passwd.txt": "symbolic link to a target outside the folder",
        "elsewhere": "symbolic link to a target outside the folder",
        "relative.txt": "symbolic link to a target outside the folder",
        "guides/up.md": "symbolic link to a target outside the folder",
        "dangling.md": "broken symbolic link",
        "loop-a.md": "symbolic link loop",
        "loop-b.md": "symbolic link loop",
        "self": "symbolic link to a folder (not followed)",
        "pipe.txt": "not a regular file",
    }
    assert report.failed == ()
    assert indexed_sources(settings) == {
        "alias.md",
        "attention.md",
        "guides/bm25.txt",
        "guides/moe.html",
        "向量数据库.md",
    }
    assert all("passwd" not in s for s in sources_found(settings, embedder, SECRET))

    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(app, ["reindex", str(docs), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["unchanged"] == 5
    assert {"path": "passwd.txt", "reason": skipped["passwd.txt"]} in summary["skipped"]


def test_a_loader_that_raises_anything_fails_only_its_file(
    make_settings: MakeSettings, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(source: str, data: bytes) -> load.LoadedDocument:
        raise RuntimeError("unexpected parser state")

    monkeypatch.setitem(load.LOADERS, ".txt", explode)
    settings = make_settings()

    report = reindex(settings, embedder=embedder)

    assert [(f.path, f.error) for f in report.failed] == [
        ("guides/bm25.txt", "cannot load .txt: RuntimeError: unexpected parser state")
    ]
    assert report.generation == 1 and len(report.added) == 3


def test_a_password_protected_pdf_fails_and_an_open_one_is_indexed(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    from tests.unit.test_load_hostile import encrypted_pdf

    (docs / "locked.pdf").write_bytes(encrypted_pdf("Quokkas are marsupials.", "pw", "AES-256"))
    (docs / "open.pdf").write_bytes(encrypted_pdf("Wombats dig burrows.", "", "AES-256"))
    settings = make_settings()

    report = reindex(settings, embedder=embedder)

    assert [(f.path, f.error) for f in report.failed] == [
        ("locked.pdf", "encrypted PDF (needs a password)")
    ]
    assert "open.pdf" in report.added and report.generation == 1
    assert sources_found(settings, embedder, "Which animals dig burrows?")[0] == "open.pdf"


def test_a_file_over_the_size_limit_is_reported_not_read(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    settings = make_settings(ingest={"max_file_bytes": 4096})
    (docs / "big.txt").write_text("Large file. " * 1000)  # 12,000 bytes
    first = reindex(settings, embedder=embedder)
    assert [(f.path, f.error) for f in first.failed] == [
        ("big.txt", "file too large (12000 bytes; the limit is 4096, RAG_INGEST__MAX_FILE_BYTES)")
    ]
    assert "big.txt" not in indexed_sources(settings)

    # A file that was indexed and has grown past the limit keeps its previous chunks.
    (docs / "big.txt").write_text("Small now.")
    reindex(settings, embedder=embedder)
    assert "big.txt" in indexed_sources(settings)
    (docs / "big.txt").write_text("Large again. " * 1000)
    again = reindex(settings, embedder=embedder)
    assert [f.path for f in again.failed] == ["big.txt"] and again.deleted == ()
    assert "big.txt" in indexed_sources(settings)


def test_the_size_limit_reads_nothing(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    # A sparse 64 GiB file: reading it would take minutes and all the memory there is.
    with (docs / "huge.md").open("wb") as handle:
        handle.truncate(64 * 2**30)
    report = reindex(make_settings(), embedder=embedder)
    assert [f.path for f in report.failed] == ["huge.md"]
    assert report.failed[0].error.startswith("file too large (68719476736 bytes")

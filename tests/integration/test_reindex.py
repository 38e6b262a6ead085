"""Reindexing with the real embedder and a real embedded Chroma, on the tiny test corpus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.reindex import reindex
from rag_cli.commands import app
from rag_service.errors import IndexBusy, IndexNotReady
from rag_service.index_state import IndexState
from rag_service.serving import SearchService
from rag_service.settings import Settings
from rag_service.stores import open_store
from tests.conftest import CountingEmbedder

pytestmark = pytest.mark.integration

MakeSettings = Callable[..., Settings]


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sources_found(
    settings: Settings, embedder: CountingEmbedder, query: str, k: int = 10
) -> list[str]:
    service = SearchService(settings, embedder)
    try:
        return [hit.chunk.source for hit in service.search(query, k).passages]
    finally:
        service.close()


def manifest_ids(settings: Settings) -> dict[str, list[str]]:
    state = IndexState(settings.data_dir)
    pointer = state.current()
    assert pointer is not None
    return {source: entry.chunk_ids for source, entry in state.manifest(pointer).items()}


def test_first_run_indexes_every_format(
    make_settings: MakeSettings, embedder: CountingEmbedder
) -> None:
    settings = make_settings()
    report = reindex(settings, embedder=embedder)
    assert sorted(report.added) == [
        "attention.md",
        "guides/bm25.txt",
        "guides/moe.html",
        "向量数据库.md",
    ]
    assert report.failed == () and report.generation == 1
    assert embedder.texts_embedded == report.chunks_total > 4
    assert (
        sources_found(settings, embedder, "How many heads did the original transformer use?")[0]
        == "attention.md"
    )
    assert (
        sources_found(settings, embedder, "gating router selects experts per token")[0]
        == "guides/moe.html"
    )


def test_second_run_embeds_and_writes_nothing(
    make_settings: MakeSettings, embedder: CountingEmbedder
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    before, embedded_before = tree_snapshot(settings.data_dir), embedder.texts_embedded

    report = reindex(settings, embedder=embedder)

    assert (
        report.summary()["added"] == report.summary()["updated"] == report.summary()["deleted"] == 0
    )
    assert report.summary()["unchanged"] == 4
    assert report.generation is None
    assert embedder.texts_embedded == embedded_before
    assert tree_snapshot(settings.data_dir) == before


def test_editing_a_file_reembeds_only_its_new_chunks(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    ids_before = manifest_ids(settings)
    embedder.texts_embedded = 0

    with (docs / "guides" / "bm25.txt").open("a") as fh:
        fh.write("\nOkapi BM25 was developed for the City University London retrieval system.\n")
    report = reindex(settings, embedder=embedder)

    ids_after = manifest_ids(settings)
    assert report.updated == ("guides/bm25.txt",) and report.generation == 2
    changed = set(ids_after["guides/bm25.txt"]) - set(ids_before["guides/bm25.txt"])
    assert embedder.texts_embedded == report.chunks_embedded == len(changed) >= 1
    for source in ("attention.md", "guides/moe.html", "向量数据库.md"):
        assert ids_after[source] == ids_before[source]
    assert sources_found(settings, embedder, "City University London Okapi")[0] == "guides/bm25.txt"


def test_deleting_a_file_removes_its_chunks(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    (docs / "guides" / "moe.html").unlink()

    report = reindex(settings, embedder=embedder)

    assert report.deleted == ("guides/moe.html",) and report.chunks_embedded == 0
    assert "guides/moe.html" not in manifest_ids(settings)
    assert "guides/moe.html" not in sources_found(
        settings, embedder, "mixture of experts gating", k=20
    )
    # Retired chunks are purged by the next reindex that writes (readers may still hold gen 1).
    (docs / "new.md").write_text("# New\n\nA new note about tokenizers.\n")
    reindex(settings, embedder=embedder)
    pointer = IndexState(settings.data_dir).current()
    assert pointer is not None
    store = open_store(settings, pointer.collection)
    try:
        assert store.count() == pointer.chunks
    finally:
        store.close()


def test_bad_files_are_reported_and_the_rest_indexed(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    (docs / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (docs / "latin1.md").write_bytes(b"caf\xe9")
    (docs / "empty.md").write_bytes(b"")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    (docs / "ignored.png").write_bytes(b"\x89PNG")
    settings = make_settings()

    report = reindex(settings, embedder=embedder)

    failed = {f.path: f.error for f in report.failed}
    assert set(failed) == {"binary.txt", "latin1.md", "empty.md", "broken.pdf"}
    assert "binary" in failed["binary.txt"] and "UTF-8" in failed["latin1.md"]
    assert len(report.added) == 4 and report.generation == 1


def test_a_file_that_turns_unreadable_keeps_its_previous_chunks(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    ids_before = manifest_ids(settings)
    (docs / "attention.md").write_bytes(b"\xff\xfe broken now")

    report = reindex(settings, embedder=embedder)

    assert [f.path for f in report.failed] == ["attention.md"] and report.deleted == ()
    assert manifest_ids(settings)["attention.md"] == ids_before["attention.md"]
    assert sources_found(settings, embedder, "multi-head attention heads")[0] == "attention.md"


def test_cli_json_summary_strict_and_dry_run(
    make_settings: MakeSettings, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    (docs / "empty.txt").write_bytes(b"")
    runner = CliRunner()

    dry = runner.invoke(app, ["reindex", str(docs), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["added"] == 4 and json.loads(dry.stdout)["dry_run"] is True
    assert IndexState(settings.data_dir).current() is None

    strict = runner.invoke(app, ["reindex", str(docs), "--json", "--strict"])
    summary = json.loads(strict.stdout)
    assert strict.exit_code == 1
    assert summary["added"] == 4 and summary["failed"] == [
        {"path": "empty.txt", "error": "no text (empty file)"}
    ]
    assert set(summary) >= {"added", "updated", "deleted", "unchanged", "failed"}

    again = runner.invoke(app, ["reindex", str(docs), "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["unchanged"] == 4


def test_changing_chunking_forces_a_full_rebuild(
    make_settings: MakeSettings, embedder: CountingEmbedder
) -> None:
    first = make_settings()
    reindex(first, embedder=embedder)
    old_collection = IndexState(first.data_dir).current().collection  # type: ignore[union-attr]
    embedder.texts_embedded = 0

    smaller = make_settings(chunking={"chunk_size": 200, "chunk_overlap": 20})
    report = reindex(smaller, embedder=embedder)

    pointer = IndexState(smaller.data_dir).current()
    assert report.full_rebuild and pointer is not None
    assert pointer.collection != old_collection
    assert embedder.texts_embedded == report.chunks_total == pointer.chunks
    with pytest.raises(IndexNotReady, match="does not exist"):
        open_store(smaller, old_collection).count()
    # A service still configured the old way refuses the new index instead of mixing vectors.
    with pytest.raises(IndexNotReady, match="other embedding or chunking settings"):
        sources_found(first, embedder, "attention")


def test_only_one_reindex_at_a_time(
    make_settings: MakeSettings, embedder: CountingEmbedder
) -> None:
    settings = make_settings()
    state = IndexState(settings.data_dir)
    with state.reindex_lock(), pytest.raises(IndexBusy):
        reindex(settings, embedder=embedder)


@pytest.mark.slow
def test_killed_reindex_leaves_the_old_index_serving(
    make_settings: MakeSettings, embedder: CountingEmbedder, docs: Path, tmp_path: Path
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    pointer_before = (settings.data_dir / "CURRENT.json").read_bytes()
    for i in range(60):
        (docs / f"bulk-{i:02d}.md").write_text(
            f"# Bulk note {i}\n\n" + "\n\n".join(f"Zebra fact {i}.{j}: striped." for j in range(8))
        )

    env = {
        **os.environ,
        "RAG_DATA_DIR": str(settings.data_dir),
        "RAG_CORPUS_DIR": str(docs),
        "RAG_EMBEDDER__BATCH_SIZE": "1",  # 16 chunks per write: several writes before the end
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_cli", "reindex"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if "embedded 32/" in line:  # two batches are in Chroma, many more to go
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "reindex never reported progress"
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The pointer did not move, the half-written generation is invisible, the old one answers.
    assert (settings.data_dir / "CURRENT.json").read_bytes() == pointer_before
    pointer = IndexState(settings.data_dir).current()
    assert pointer is not None
    store = open_store(settings, pointer.collection)
    try:
        assert store.count() > pointer.chunks  # the killed run did write
    finally:
        store.close()
    found = sources_found(settings, embedder, "Zebra fact striped", k=10)
    assert found and not any(s.startswith("bulk-") for s in found)

    # The next run finishes the job, reusing the vectors the killed run had written.
    embedder.texts_embedded = 0
    report = reindex(settings, embedder=embedder)
    assert len(report.added) == 60 and report.chunks_reused >= 32
    new_chunks = report.chunks_total - pointer.chunks
    assert embedder.texts_embedded == report.chunks_embedded == new_chunks - report.chunks_reused
    assert sources_found(settings, embedder, "Zebra fact 7.3 striped", k=3)[0].startswith("bulk-")


def test_failed_files_are_not_parsed_again_until_they_or_the_settings_change(
    make_settings: MakeSettings,
    embedder: CountingEmbedder,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ingest.scan

    parsed: list[str] = []
    load = ingest.scan.load_document

    def counting_load(source: str, data: bytes) -> object:
        parsed.append(source)
        return load(source, data)

    monkeypatch.setattr(ingest.scan, "load_document", counting_load)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    (docs / "latin1.md").write_bytes(b"caf\xe9")
    (docs / "long.md").write_text("\n\n".join(f"Paragraph {i} of a long file." for i in range(900)))
    settings = make_settings(ingest={"max_file_chunks": 10})
    first = reindex(settings, embedder=embedder)
    failed = {f.path: f.error for f in first.failed}
    assert set(failed) == {"broken.pdf", "latin1.md", "long.md"}
    assert "RAG_INGEST__MAX_FILE_CHUNKS" in failed["long.md"] and "long.md" not in first.added

    parsed.clear()
    dry = reindex(settings, embedder=embedder, dry_run=True)
    again = reindex(settings, embedder=embedder)
    assert parsed == []  # neither run read a failed file's bytes into a parser
    assert (
        {f.path: f.error for f in again.failed} == failed == {f.path: f.error for f in dry.failed}
    )
    assert again.generation is None  # nothing changed, nothing written

    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 still nothing")
    reindex(settings, embedder=embedder)
    assert parsed == ["broken.pdf"]  # changed bytes are parsed

    parsed.clear()
    raised = reindex(make_settings(ingest={"max_file_chunks": 1000}), embedder=embedder)
    assert sorted(parsed) == ["broken.pdf", "latin1.md", "long.md"]  # another cap: all again
    assert "long.md" in raised.added

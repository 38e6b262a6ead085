"""Collections on disk: names, where each lives, which folder a reindex may take; and a job's
file writes, which must never leave the collection's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_service.collections import DEFAULT, Collections, check_name, store_name
from rag_service.errors import BadRequest, ConfigError, NotFound, RagError
from rag_service.jobs import FileWrite, apply_write, undo_write
from rag_service.retrieval.bm25 import Bm25Index

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["", "Upper", "-dash", "a/b", "a.b", "x" * 49, "名字"])
def test_names_that_are_no_folder_everywhere_are_refused(name: str) -> None:
    with pytest.raises(BadRequest):
        check_name(name)


def test_default_exists_from_the_start_and_mirrors_the_corpus(tmp_path: Path) -> None:
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    default = collections.get(DEFAULT)
    assert default.root == tmp_path / "data" and not default.managed
    assert default.folder == (tmp_path / "corpus").resolve()
    assert collections.names() == [DEFAULT]
    with pytest.raises(NotFound):
        collections.get("other")


def test_a_managed_collection_takes_no_other_folder(tmp_path: Path) -> None:
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    made, created = collections.create("papers")
    assert created and made.managed and made.folder.is_relative_to(tmp_path / "data")
    assert collections.create("papers") == (made, False)
    assert collections.for_reindex("papers", None) == made
    with pytest.raises(ConfigError, match="managed over the API"):
        collections.for_reindex("papers", tmp_path)


def test_a_mirrored_collection_follows_the_folder_it_is_given(tmp_path: Path) -> None:
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with pytest.raises(ConfigError):
        collections.for_reindex("notes", None)  # no folder yet
    assert collections.for_reindex("notes", tmp_path / "one", record=False).folder == (
        tmp_path / "one"
    )
    assert not collections.exists("notes")  # a dry run writes nothing down
    collections.for_reindex("notes", tmp_path / "one")
    assert collections.for_reindex("notes", tmp_path / "two").folder == tmp_path / "two"
    assert collections.get("notes").folder == tmp_path / "two"
    assert collections.names() == [DEFAULT, "notes"]


def test_store_names_fit_chroma_and_never_collide(tmp_path: Path) -> None:
    fingerprint = "f" * 64
    names = {store_name("p" * 41, c, fingerprint) for c in (DEFAULT, "a", "a-b", "x" * 48)}
    assert len(names) == 4 and all(3 <= len(n) <= 63 for n in names)


def test_writes_stay_inside_the_folder(tmp_path: Path) -> None:
    folder, outside, job = tmp_path / "docs", tmp_path / "outside", tmp_path / "job"
    for made in (folder, outside, job):
        made.mkdir()
    (folder / "link").symlink_to(outside)
    staged = job / "0"
    staged.write_bytes(b"# x\n\ny")
    with pytest.raises(RagError, match="symbolic link"):
        apply_write(folder, FileWrite("link/evil.md", "0"), job, 0)
    (outside / "victim.md").write_text("keep")
    with pytest.raises(RagError, match="symbolic link"):
        apply_write(folder, FileWrite("link/victim.md", None), job, 1)
    assert list(outside.iterdir()) == [outside / "victim.md"]

    apply_write(folder, FileWrite("a/b/new.md", "0"), job, 0)
    assert (folder / "a/b/new.md").read_bytes() == b"# x\n\ny" and not staged.exists()
    apply_write(folder, FileWrite("a/b/new.md", "0"), job, 0)  # again after a restart: no-op
    apply_write(folder, FileWrite("a/b/new.md", None), job, 1)
    assert not (folder / "a").exists()  # emptied folders go too


def test_undoing_writes_puts_back_what_they_replaced(tmp_path: Path) -> None:
    folder, job = tmp_path / "docs", tmp_path / "job"
    folder.mkdir()
    job.mkdir()
    (folder / "old.md").write_bytes(b"old bytes")
    (folder / "gone.md").write_bytes(b"deleted bytes")
    (job / "0").write_bytes(b"new bytes")
    (job / "1").write_bytes(b"a new file")
    writes = [FileWrite("old.md", "0"), FileWrite("sub/added.md", "1"), FileWrite("gone.md", None)]
    for n, write in enumerate(writes):
        apply_write(folder, write, job, n)
        apply_write(folder, write, job, n)  # a restart applies it again: the saved copy stays
    assert (folder / "old.md").read_bytes() == b"new bytes" and not (folder / "gone.md").exists()

    for _ in range(2):  # undoing is idempotent too (a crash mid-undo does it again)
        for n, write in reversed(list(enumerate(writes))):
            undo_write(folder, write, job, n)
    assert (folder / "old.md").read_bytes() == b"old bytes"
    assert (folder / "gone.md").read_bytes() == b"deleted bytes"
    assert not (folder / "sub").exists()


@pytest.mark.parametrize("backend", ["bm25s", "rank-bm25"])
def test_an_empty_collection_has_a_bm25_index_that_finds_nothing(
    tmp_path: Path, backend: str
) -> None:
    Bm25Index.build([], [], [], backend).save(tmp_path / "index")
    loaded = Bm25Index.load(tmp_path / "index", backend)
    assert loaded.search(["anything"], 5) == []

"""Collections on disk: names, where each lives, which folder a reindex may take; and a job's
file writes, which must never leave the collection's folder."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from rag_service.collections import DEFAULT, Collections, check_name, store_name
from rag_service.documents import check_new_source, check_source, claim_source, spelled
from rag_service.errors import BadRequest, ConfigError, NameTaken, NotFound, RagError
from rag_service.jobs import FileWrite
from rag_service.retrieval.bm25 import Bm25Index
from rag_service.state.file_jobs import apply_write, undo_write

pytestmark = pytest.mark.unit

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "a\\b",
        ".",
        "..",
        ".hidden",
        " padded",
        "padded\u3000",  # an ideographic space
        "x" * 65,
        "名" * 67,  # 64 characters or fewer, but 201 bytes
        "evil\u202egnp.md",  # right-to-left override
        "zero\u200bwidth",
        "line\nbreak",
        "line\u2028separator",
        "nul\x00",
    ],
)
def test_names_that_are_no_folder_or_hide_characters_are_refused(name: str) -> None:
    with pytest.raises(BadRequest, match="cannot name a collection"):
        check_name(name)


@pytest.mark.parametrize(
    "name", ["员工手册", "Upper", "a.b", "-dash", "x" * 64, "名" * 64, "Ünï 2"]
)
def test_names_in_any_script_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_a_name_is_kept_in_nfc(tmp_path: Path) -> None:
    assert check_name(CAFE_NFD) == CAFE_NFC
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    made, created = collections.create(CAFE_NFD)
    assert created and made.name == CAFE_NFC and made.root.name == CAFE_NFC
    assert collections.create(CAFE_NFC) == (made, False)
    assert collections.get(CAFE_NFD) == made
    assert collections.names() == [DEFAULT, CAFE_NFC]


def test_names_that_differ_only_in_case_are_one_name(tmp_path: Path) -> None:
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    collections.create("Handbook")
    for other in ("handbook", "HANDBOOK", "Default"):
        with pytest.raises(NameTaken, match="differ only in case"):
            collections.create(other)
    (tmp_path / "notes").mkdir()
    with pytest.raises(NameTaken):
        collections.for_reindex("handBOOK", tmp_path / "notes")
    collections.create("Straße")
    with pytest.raises(NameTaken):
        collections.create("STRASSE")
    assert collections.names() == [DEFAULT, "Handbook", "Straße"]


def test_a_managed_folder_is_the_one_under_its_root_whatever_the_record_says(
    tmp_path: Path,
) -> None:
    """Versions before 0.2 wrote it relative to their working directory."""
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    made, _ = collections.create("old")
    record = made.root / "collection.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "folder": "data/x"}))
    assert collections.get("old").folder == made.folder == made.root / "documents"
    assert collections.for_reindex("old", made.folder) == collections.get("old")


def test_what_a_deletion_cut_short_left_does_not_come_back(tmp_path: Path) -> None:
    collections = Collections(tmp_path / "data", tmp_path / "corpus")
    made, _ = collections.create("papers")
    (made.folder / "old.md").write_text("# old")
    collections.unlist(made)
    assert not collections.exists("papers") and collections.names() == [DEFAULT]
    again, created = collections.create("papers")
    assert created and list(again.folder.iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "a/" + "x" * 253 + ".md",  # a 256-byte file name
        "名" * 85 + ".md",  # 258 bytes
        "/".join(["d" * 200] * 16) + ".md",  # every name fits, the whole path does not
        "../x.md",
        "a\\b.md",
    ],
)
def test_document_paths_that_cannot_be_files_are_refused(path: str) -> None:
    with pytest.raises(BadRequest):
        check_source(path)


def test_a_new_document_path_is_nfc_and_shows_every_character() -> None:
    assert check_new_source(f"notes/{CAFE_NFD}.md") == f"notes/{CAFE_NFC}.md"
    assert check_new_source("x" * 252 + ".md") == "x" * 252 + ".md"  # 255 bytes
    for hidden in ("evil\u202edm.exe.md", "a\u200d.md", "a/b\u2029.md", "tab\t.md"):
        with pytest.raises(BadRequest, match="control or format character"):
            check_new_source(hidden)


def test_a_write_goes_to_the_document_it_names_or_is_refused_if_only_case_differs() -> None:
    known = {"Normal.md", f"{CAFE_NFD}.md", "notes/a.md"}
    assert claim_source("Normal.md", known) == "Normal.md"
    assert claim_source(f"{CAFE_NFC}.md", known) == f"{CAFE_NFD}.md"  # as the folder spells it
    assert claim_source("new.md", known) == "new.md"
    for lookalike in ("normal.md", "NORMAL.MD", f"{CAFE_NFC.upper()}.md", "Notes/a.md"):
        with pytest.raises(NameTaken, match="differs only in case"):
            claim_source(lookalike, known)
    assert spelled("normal.md", known) == "normal.md"  # a read or a delete: no such document


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
    collections = (DEFAULT, "a", "a-b", "x" * 64, "员工手册", "名" * 64)
    names = {store_name("p" * 41, c, fingerprint) for c in collections}
    assert len(names) == len(collections) and all(3 <= len(n) <= 63 for n in names)


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

    longest = "x" * 252 + ".md"  # the part file written first must fit as well
    staged.write_bytes(b"# x\n\ny")
    apply_write(folder, FileWrite(longest, "0"), job, 0)
    assert (folder / longest).read_bytes() == b"# x\n\ny"


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

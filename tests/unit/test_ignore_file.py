"""A folder's .ragignore leaves files out of the index, the way users write a .gitignore; the
shipped corpus uses one so its README (which describes the corpus) is not a document."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluation.datasets import load_eval_set
from ingest.files import list_sources

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def sources(root: Path) -> list[str]:
    return [f.source for f in list_sources(root).files]


def tree(root: Path, *paths: str) -> Path:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("# T\n\ntext\n")
    return root


def test_a_folder_without_an_ignore_file_keeps_its_readme(tmp_path: Path) -> None:
    assert sources(tree(tmp_path, "README.md", "a/README.md")) == ["README.md", "a/README.md"]


def test_patterns_match_like_a_gitignore(tmp_path: Path) -> None:
    tree(tmp_path, "README.md", "a/README.md", "a/b.tmp.md", "drafts/x.md", "c/drafts.md", "k.md")
    (tmp_path / ".ragignore").write_text(
        "# comments and blank lines are skipped\n\n/README.md\n*.tmp.md\ndrafts/\n"
    )
    # /README.md: only the top one; *.tmp.md: at any depth; drafts/: the folder, not a file.
    assert sources(tmp_path) == ["a/README.md", "c/drafts.md", "k.md"]
    (tmp_path / ".ragignore").write_text("a/*\nk.md\n")
    assert sources(tmp_path) == ["README.md", "c/drafts.md", "drafts/x.md"]


def test_an_ignore_file_that_is_not_a_regular_file_is_reported_and_ignores_nothing(
    tmp_path: Path,
) -> None:
    tree(tmp_path, "README.md")
    os.mkfifo(tmp_path / ".ragignore")  # opening it for reading would block a naive scan
    listing = list_sources(tmp_path)
    assert [f.source for f in listing.files] == ["README.md"]
    assert [s.path for s in listing.skipped] == [".ragignore"]


def test_the_shipped_corpus_indexes_its_notes_but_not_its_readme(tmp_path: Path) -> None:
    indexed = set(sources(CORPUS))
    assert "README.md" not in indexed
    assert len(indexed) == 26 and all(s.startswith(("en/", "zh/")) for s in indexed)
    # Every note the evaluation set names as gold or related is indexed.
    for question in load_eval_set(CORPUS, tmp_path).questions:
        assert question.gold | question.related <= indexed, question.qid

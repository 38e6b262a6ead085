from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.datasets import load_eval_set

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def test_every_corpus_question_names_its_gold_and_related_notes(tmp_path: Path) -> None:
    questions = load_eval_set(CORPUS, tmp_path).questions
    assert len(questions) == 52
    for q in questions:
        assert q.gold and all((CORPUS / g).is_file() for g in q.gold), q.qid
        # The same topic in the other language, filtered out too when the question is made
        # unanswerable: it may hold the answer in the other language.
        other = "en" if q.lang == "zh" else "zh"
        assert q.related == {f"{other}/{Path(g).name}" for g in q.gold}, q.qid
        assert all((CORPUS / r).is_file() for r in q.related) and not q.related & q.gold


def test_related_ids_are_optional_and_mapped_like_gold(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text(
        '{"doc_id": "a", "title": "A", "text": "alpha"}\n{"doc_id": "b", "text": "beta"}\n'
    )
    (folder / "questions.jsonl").write_text(
        '{"qid": "1", "question": "alpha?", "answers": ["alpha"], "gold_doc_ids": ["a"], '
        '"related_doc_ids": ["b"]}\n'
        '{"qid": "2", "question": "beta?", "gold_doc_ids": ["b"]}\n'
    )
    first, second = load_eval_set(folder, tmp_path / "work").questions
    assert first.gold == {"a.md"} and first.related == {"b.md"}
    assert second.related == frozenset()

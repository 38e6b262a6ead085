from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.datasets import load_eval_set
from rag_service.errors import ConfigError

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


def _shared_set(folder: Path, doc: str, question: str, answer: str, lang: str) -> None:
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        json.dumps({"doc_id": "d1", "title": "T", "text": doc}, ensure_ascii=False) + "\n"
    )
    record = {
        "qid": "q1",
        "question": question,
        "answers": [answer],
        "gold_doc_ids": ["d1"],
        "lang": lang,
    }
    (folder / "questions.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n")


def test_derived_sets_are_built_from_the_parallel_shared_ones(tmp_path: Path) -> None:
    shared = tmp_path / "eval"
    _shared_set(
        shared / "xquad_en",
        "The software costs 308 dollars.",
        "What does it cost?",
        "308 dollars",
        "en",
    )
    _shared_set(
        shared / "xquad_zh", "这个软件的价格是308美元。", "这个软件多少钱？", "308美元", "zh"
    )

    en2zh = load_eval_set(shared / "xquad_en2zh", tmp_path / "a")
    (q,) = en2zh.questions
    assert en2zh.name == "xquad_en2zh"
    assert (q.question, q.answers, q.lang, q.gold) == (
        "What does it cost?",
        ["308美元"],
        "en",
        {"d1.md"},
    )
    assert "这个软件的价格" in (en2zh.documents / "d1.md").read_text(encoding="utf-8")

    hant = load_eval_set(shared / "xquad_zh_hant", tmp_path / "b")
    (q,) = hant.questions
    assert (q.question, q.answers) == ("這個軟體多少錢？", ["308美元"])  # Taiwan's word for 软件
    assert "這個軟體的價格" in (hant.documents / "d1.md").read_text(encoding="utf-8")

    mixed = load_eval_set(shared / "xquad_hant2hans", tmp_path / "c")
    assert mixed.questions[0].question == "這個軟體多少錢？"
    assert "这个软件的价格" in (mixed.documents / "d1.md").read_text(encoding="utf-8")

    assert not (tmp_path / "eval" / "xquad_en2zh").exists()  # nothing written beside the sources
    with pytest.raises(ConfigError, match="xquad_en2zh"):
        load_eval_set(shared / "no_such_set", tmp_path / "d")
    with pytest.raises(ConfigError, match=r"built from .*cmrc2018_dev: not found"):
        load_eval_set(shared / "cmrc2018_dev_hant", tmp_path / "e")

"""Evaluation sets: a folder with corpus.jsonl and questions.jsonl (the ../shared/eval format),
or a document folder with QUESTIONS.jsonl whose gold ids are paths (the shipped corpus/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rag_service.errors import ConfigError


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answers: list[str]
    gold: set[str]  # source paths, as the index names them
    lang: str
    # Documents that may hold the answer too (the same topic in the other language): filtered
    # out with the gold ones when the question is made unanswerable; not scored as relevant.
    related: frozenset[str] = frozenset()


@dataclass(frozen=True)
class EvalSet:
    name: str
    documents: Path  # the folder to index
    questions: list[Question]


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _file_name(doc_id: str, taken: set[str]) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in doc_id)[:120] or "doc"
    name, n = f"{stem}.md", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.md"
    taken.add(name)
    return name


def load_eval_set(directory: Path, workdir: Path) -> EvalSet:
    """Load a set; a corpus.jsonl is written out under `workdir` as one Markdown file per
    document (its title as the heading), so it goes through the same loader as user files."""
    if (directory / "corpus.jsonl").is_file():
        docs_dir = workdir / "documents"
        docs_dir.mkdir(parents=True, exist_ok=True)
        source_of: dict[str, str] = {}
        taken: set[str] = set()
        for doc in _read_jsonl(directory / "corpus.jsonl"):
            doc_id, title, text = str(doc["doc_id"]), str(doc.get("title") or ""), str(doc["text"])
            name = source_of[doc_id] = _file_name(doc_id, taken)
            body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
            (docs_dir / name).write_text(body, encoding="utf-8")
        questions_path = directory / "questions.jsonl"
    elif (directory / "QUESTIONS.jsonl").is_file():
        docs_dir = directory
        source_of = {}
        questions_path = directory / "QUESTIONS.jsonl"
    else:
        raise ConfigError(f"{directory} has neither corpus.jsonl nor QUESTIONS.jsonl")
    questions = [
        Question(
            qid=str(q["qid"]),
            question=str(q["question"]),
            answers=[str(a) for a in q.get("answers", [])],  # type: ignore[attr-defined]
            gold={source_of.get(str(g), str(g)) for g in q["gold_doc_ids"]},  # type: ignore[attr-defined]
            lang=str(q.get("lang", "")),
            related=frozenset(
                source_of.get(str(g), str(g))
                for g in q.get("related_doc_ids", [])  # type: ignore[attr-defined]
            ),
        )
        for q in _read_jsonl(questions_path)
    ]
    return EvalSet(directory.name, docs_dir, questions)

"""Evaluation sets: a folder with corpus.jsonl and questions.jsonl (the ../shared/eval format),
a document folder with QUESTIONS.jsonl whose gold ids are paths (the shipped corpus/), or the
name of a set derived at load time from the shared sets beside it (`DERIVED`), which keeps
copies of the shared data out of the repository."""

from __future__ import annotations

import json
from collections.abc import Callable
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


@dataclass(frozen=True)
class DerivedSet:
    """A set built from shared ones in the same folder: the questions of one, the corpus and
    answers of another (their question and document ids are shared), every text optionally
    converted with an OpenCC configuration."""

    questions: str
    corpus: str
    opencc: str = ""  # OpenCC configuration for the questions and answers; "": unchanged
    convert_corpus: bool = True  # the corpus too


# XQuAD's sets are translations of one another, question by question and paragraph by paragraph.
# en2zh: English questions over the Chinese paragraphs (answers from the Chinese side, as
# xquad_zh2en takes them from the English side). The zh-Hant sets: Traditional script with
# Taiwan's vocabulary (s2twp: 軟體 for 软件), on both sides or on the questions only.
DERIVED = {
    "xquad_en2zh": DerivedSet(questions="xquad_en", corpus="xquad_zh"),
    "xquad_zh_hant": DerivedSet(questions="xquad_zh", corpus="xquad_zh", opencc="s2twp"),
    "xquad_hant2hans": DerivedSet(
        questions="xquad_zh", corpus="xquad_zh", opencc="s2twp", convert_corpus=False
    ),
    "cmrc2018_dev_hant": DerivedSet(
        questions="cmrc2018_dev", corpus="cmrc2018_dev", opencc="s2twp"
    ),
}


def derive_set(directory: Path, workdir: Path) -> Path:
    """Write the derived set `directory.name`, built from the shared sets in `directory.parent`,
    to `workdir` as corpus.jsonl and questions.jsonl; its folder."""
    spec = DERIVED.get(directory.name)
    if spec is None:
        raise ConfigError(
            f"{directory} is not a set folder, nor a derived set "
            f"({', '.join(sorted(DERIVED))}) beside its sources"
        )
    for source in {spec.questions, spec.corpus}:
        if not (directory.parent / source / "corpus.jsonl").is_file():
            raise ConfigError(
                f"{directory.name} is built from {directory.parent / source}: not found"
            )
    convert = _converter(spec.opencc)
    convert_corpus = convert if spec.convert_corpus else str
    corpus = _read_jsonl(directory.parent / spec.corpus / "corpus.jsonl")
    answers = {  # the corpus side's, in its script
        str(q["qid"]): [convert_corpus(str(a)) for a in q.get("answers", [])]  # type: ignore[attr-defined]
        for q in _read_jsonl(directory.parent / spec.corpus / "questions.jsonl")
    }
    out = workdir / directory.name
    out.mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc in corpus:
            title, text = str(doc.get("title") or ""), str(doc["text"])
            doc = {**doc, "title": convert_corpus(title), "text": convert_corpus(text)}
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with (out / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for q in _read_jsonl(directory.parent / spec.questions / "questions.jsonl"):
            derived = {
                **q,
                "question": convert(str(q["question"])),
                "answers": answers[str(q["qid"])],
            }
            fh.write(json.dumps(derived, ensure_ascii=False) + "\n")
    return out


def _converter(config: str) -> Callable[[str], str]:
    if not config:
        return str
    import opencc

    converter = opencc.OpenCC(config)
    return lambda text: str(converter.convert(text))


def load_eval_set(directory: Path, workdir: Path) -> EvalSet:
    """Load a set; a corpus.jsonl is written out under `workdir` as one Markdown file per
    document (its title as the heading), so it goes through the same loader as user files."""
    if not directory.exists():
        directory = derive_set(directory, workdir / "derived")
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
    elif any((directory / name).is_file() for name in ("QUESTIONS.jsonl", "CONVERSATIONS.jsonl")):
        docs_dir = directory
        source_of = {}
        questions_path = directory / "QUESTIONS.jsonl"  # may be absent: conversations only
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
        for q in (_read_jsonl(questions_path) if questions_path.is_file() else [])
    ]
    return EvalSet(directory.name, docs_dir, questions)

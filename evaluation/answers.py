"""Answer quality and refusal on a question set with short answers.

Each question is asked twice through the answering pipeline: against the whole corpus (it should
be answered, and the answer should hold a gold answer string), and against the corpus without
its gold documents (it should be refused). The second index is the first with the gold sources
filtered out of both retrievers, which is the same as a corpus that lacks them.
"""

from __future__ import annotations

import re
import string
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.metrics import percentile
from evaluation.runner import PreparedSet, prepared_set
from rag_service.answering import Answer, AnswerService, Question, build_answer_service
from rag_service.citations import strip_markers
from rag_service.retrieval.results import SearchFilters
from rag_service.retrieval.tokenize import CJK_CHAR, normalize
from rag_service.settings import Settings

_PUNCTUATION = set(string.punctuation) | set("，。！？；：、“”‘’（）《》【】「」『』—…·")


def _normal_answer(text: str) -> str:
    """SQuAD's answer normalisation (lower case, no punctuation or English articles, single
    spaces), with width and script folded first so Chinese answers compare too."""
    text = "".join(c for c in normalize(text) if c not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _answer_tokens(text: str) -> list[str]:
    """Words for English; single characters for Chinese (as the CMRC 2018 scorer does)."""
    tokens: list[str] = []
    for word in _normal_answer(text).split():
        tokens.extend(list(word) if CJK_CHAR.search(word) else [word])
    return tokens


def contains_answer(response: str, golds: Sequence[str]) -> bool:
    form = _normal_answer(response)
    # A bare short number ("60") must stand alone, not inside "1600" or "60%".
    return any(
        re.search(rf"(?<![0-9a-z]){re.escape(g)}(?![0-9a-z])", form)
        for g in (_normal_answer(gold) for gold in golds)
        if g
    )


def exact_match(response: str, golds: Sequence[str]) -> bool:
    return any(_normal_answer(response) == _normal_answer(g) for g in golds)


def f1(response: str, golds: Sequence[str]) -> float:
    best = 0.0
    predicted = _answer_tokens(response)
    for gold in golds:
        expected = _answer_tokens(gold)
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


@dataclass(frozen=True)
class AnswerRecord:
    qid: str
    language: str
    answered: bool  # with the gold documents indexed
    contains_gold: bool
    exact: bool
    f1: float
    coverage: float
    ms: float
    refused_without_gold: bool  # with the gold documents filtered out
    coverage_without_gold: float
    # The best cosine with a sentence of the top passage (None: not weighed, or no passage).
    similarity: float | None = None
    similarity_without_gold: float | None = None
    # The rule that judged each ("en", "zh", "cross" or "cross_en": the top passage in the other
    # language, a Chinese or an English question).
    rule: str = ""
    rule_without_gold: str = ""
    # Who decided ("rule", "judge", "rule_judge_failed") and the judge's P(answers), if asked.
    decided_by: str = "rule"
    decided_by_without_gold: str = "rule"
    judge_probability: float | None = None
    judge_probability_without_gold: float | None = None
    answer_chars: int = 0  # of the answer with the gold documents, citation markers excluded
    # The answer given without the gold documents still holds a gold answer: another document
    # states it (RGB's web snippets often do), so "unanswerable" is the set's label, not a fact.
    contains_gold_without_gold: bool = False


def _probability(answer: Answer) -> float | None:
    return answer.judgement.probability if answer.judgement else None


def _answer_text(answer: Answer) -> str:
    # Citation markers are not part of the answer's words.
    return re.sub(r"\[\d+\]", " ", answer.answer) if answer.answerable else ""


def answer_records(
    dataset_dir: Path,
    settings: Settings,
    cache_path: Path,
    limit: int | None = None,
    every: int = 1,
) -> tuple[str, list[AnswerRecord]]:
    """``limit``: the first questions only; ``every``: each n-th of them (a sample spread over
    the whole set, whose questions come grouped by article)."""
    with prepared_set(dataset_dir, settings, cache_path, limit) as prepared:
        service = build_answer_service(prepared.settings, prepared.service)
        try:
            return prepared.eval_set.name, _records(prepared, service, settings, every)
        finally:
            service.close()


def _records(
    prepared: PreparedSet, service: AnswerService, settings: Settings, every: int
) -> list[AnswerRecord]:
    params = settings.llm.generation_params()
    all_sources = frozenset(prepared.source_of.values())
    records = []
    for q in prepared.eval_set.questions[::every]:
        if not q.answers:
            continue
        started = time.perf_counter()
        with_gold = service.ask(Question(q.question, params))
        ms = (time.perf_counter() - started) * 1000
        without = SearchFilters(sources=all_sources - q.gold - q.related)
        without_gold = service.ask(Question(q.question, params, filters=without))
        text = _answer_text(with_gold)
        records.append(
            AnswerRecord(
                qid=q.qid,
                language=with_gold.language,
                answered=with_gold.answerable,
                contains_gold=contains_answer(text, q.answers),
                exact=exact_match(text, q.answers),
                f1=f1(text, q.answers),
                coverage=with_gold.coverage,
                ms=ms,
                refused_without_gold=not without_gold.answerable,
                coverage_without_gold=without_gold.coverage,
                similarity=with_gold.similarity,
                similarity_without_gold=without_gold.similarity,
                rule=with_gold.rule,
                rule_without_gold=without_gold.rule,
                decided_by=with_gold.decided_by,
                decided_by_without_gold=without_gold.decided_by,
                judge_probability=_probability(with_gold),
                judge_probability_without_gold=_probability(without_gold),
                answer_chars=len(strip_markers(with_gold.answer).strip())
                if with_gold.answerable
                else 0,
                contains_gold_without_gold=contains_answer(_answer_text(without_gold), q.answers),
            )
        )
    return records


def summarise_answers(name: str, records: Sequence[AnswerRecord]) -> dict[str, Any]:
    n = len(records) or 1
    latencies = [r.ms for r in records]
    return {
        "dataset": name,
        "questions": len(records),
        "answer_in_response": sum(r.contains_gold for r in records) / n,
        "exact_match": sum(r.exact for r in records) / n,
        "f1": sum(r.f1 for r in records) / n,
        "refused_answerable": sum(not r.answered for r in records) / n,
        "answered_unanswerable": sum(not r.refused_without_gold for r in records) / n,
        # The questions answered without their gold documents with a gold answer all the same
        # (another document states it; see AnswerRecord): part of answered_unanswerable.
        "answered_unanswerable_with_gold": sum(r.contains_gold_without_gold for r in records) / n,
        # The mean length of the answers given, in characters: shorter is better when the gold
        # answer is in it.
        "answer_chars": sum(r.answer_chars for r in records if r.answered)
        / (sum(r.answered for r in records) or 1),
        # The share of the 2 x questions (with and without the gold documents) the judge read.
        "reached_judge": sum(
            (r.decided_by != "rule") + (r.decided_by_without_gold != "rule") for r in records
        )
        / (2 * n),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
    }

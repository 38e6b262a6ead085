"""Shared by the refusal research scripts: each question with short answers of a set, asked
with the whole set indexed and with its gold documents filtered out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import EVAL_DIR, REPO

from evaluation.datasets import Question
from evaluation.runner import PreparedSet, prepared_set
from rag_service.retrieval.results import SearchFilters
from rag_service.serving import ServedIndex
from rag_service.settings import Settings

CACHE = REPO / "data" / "eval-cache" / "embeddings.sqlite"


def asked_both_ways(
    name: str, settings: Settings, limit: int = 1000, without_related: bool = False
) -> Iterator[tuple[PreparedSet, ServedIndex, Question, SearchFilters]]:
    """``name``: a set under ../shared/eval, or "corpus". Yields the prepared set, the served
    index, the question and the filter that leaves out its gold documents (only those: the
    corpus's related notes stay, unlike in `rag eval-answers`, unless ``without_related``)."""
    folder = REPO / "corpus" if name == "corpus" else EVAL_DIR / name
    with prepared_set(folder, settings, CACHE, limit) as p, p.service.current() as served:
        sources = frozenset(p.source_of.values())
        for q in p.eval_set.questions:
            if q.answers:
                left_out = q.gold | q.related if without_related else q.gold
                yield p, served, q, SearchFilters(sources=sources - left_out)

"""A follow-up over the shipped notes (indexed here: about a minute on 2 cores), with the real
embedder and the extractive answerer:
"What is DPO?" then "Who introduced it?"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.reindex import reindex
from rag_service.answering import AnswerService, Question, build_answer_service
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.serving import SearchService
from rag_service.settings import Settings
from rag_service.types import GenerationParams, Message

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORPUS = Path(__file__).parents[2] / "corpus"
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)


@pytest.fixture(scope="module")
def answers(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> Iterator[AnswerService]:
    root = tmp_path_factory.mktemp("corpus-index")
    settings = Settings(_env_file=None, data_dir=root / "data", corpus_dir=CORPUS)  # type: ignore[call-arg]
    reindex(settings, embedder=real_embedder)
    search = SearchService(settings, real_embedder)
    yield build_answer_service(settings, search)
    search.close()


def test_a_follow_up_is_searched_and_answered_with_what_was_asked_before(
    answers: AnswerService,
) -> None:
    first = answers.ask(Question("What is DPO?", PARAMS))
    assert first.passages[0].chunk.source == "en/rlhf.md"
    history = (Message("user", "What is DPO?"), Message("assistant", first.answer))

    follow_up = answers.ask(Question("Who introduced it?", PARAMS, history=history))
    assert follow_up.standalone_question == "Who introduced it? (DPO)"
    assert follow_up.passages[0].chunk.source == "en/rlhf.md"
    assert follow_up.answerable and "Rafailov" in follow_up.answer
    assert all(c.source == "en/rlhf.md" for c in follow_up.citations)

    # The last message alone, as it was searched before: not the DPO note's answer.
    alone = answers.ask(Question("Who introduced it?", PARAMS))
    assert alone.standalone_question == "Who introduced it?"
    assert "Rafailov" not in alone.answer


def test_a_chinese_follow_up_too(answers: AnswerService) -> None:
    # Searched only: MiniLM, the suite's embedder, reads no Chinese, so the refusal rule weighs
    # shared words alone here (the e5 default's answers are measured by rag eval-conversations).
    history = (Message("user", "DPO 是什么？"), Message("assistant", "直接偏好优化"))
    follow_up = answers.ask(Question("它是谁提出的？", PARAMS, history=history))
    assert follow_up.standalone_question == "它是谁提出的？ (DPO)"
    assert follow_up.language == "zh" and follow_up.passages[0].chunk.source == "zh/rlhf.md"


def test_a_new_topic_after_a_conversation_is_searched_as_it_is(answers: AnswerService) -> None:
    history = (Message("user", "What is DPO?"), Message("assistant", "Direct Preference..."))
    switch = answers.ask(
        Question("Which algorithm does Chroma use to index vectors?", PARAMS, history=history)
    )
    assert switch.standalone_question == "Which algorithm does Chroma use to index vectors?"
    assert switch.passages[0].chunk.source == "en/embeddings-vector-databases.md"
    assert "HNSW" in switch.answer

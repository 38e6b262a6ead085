"""The judge reads a bounded window of the passage: the sentence nearest the question and its
neighbours, within the token budget."""

from __future__ import annotations

import pytest

from rag_service.judging import bounded_passage, estimated_tokens

SENTENCES = [
    "Paris is the capital of France.",  # 31 characters: about 8 tokens
    "The Eiffel Tower was completed in 1889.",
    "It is 330 metres tall.",
    "Millions visit it every year.",
    "The city also has the Louvre.",
]


def test_token_estimate_counts_chinese_characters_and_words_apart() -> None:
    assert estimated_tokens("abcd" * 10) == pytest.approx(10)
    assert estimated_tokens("向量数据库" * 14) == pytest.approx(50)


def test_the_window_grows_around_the_nearest_sentence_next_one_first() -> None:
    cosines = [0.1, 0.9, 0.3, 0.2, 0.1]
    one = estimated_tokens(SENTENCES[1])
    assert bounded_passage(SENTENCES, cosines, one) == SENTENCES[1]
    two = one + estimated_tokens(SENTENCES[2])
    assert bounded_passage(SENTENCES, cosines, two) == " ".join(SENTENCES[1:3])
    three = two + estimated_tokens(SENTENCES[0])
    assert bounded_passage(SENTENCES, cosines, three) == " ".join(SENTENCES[0:3])
    assert bounded_passage(SENTENCES, cosines, 1000) == " ".join(SENTENCES)


def test_without_cosines_the_window_starts_at_the_beginning() -> None:
    budget = estimated_tokens(SENTENCES[0]) + estimated_tokens(SENTENCES[1])
    assert bounded_passage(SENTENCES, [], budget) == " ".join(SENTENCES[:2])


def test_a_sentence_longer_than_the_budget_is_cut_to_it() -> None:
    long = "word " * 400  # about 500 tokens
    text = bounded_passage([long], [1.0], 50)
    assert 0 < estimated_tokens(text) <= 50
    assert long.startswith(text)
    assert bounded_passage([], [], 50) == ""

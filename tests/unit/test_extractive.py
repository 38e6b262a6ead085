"""What the extractive answerer quotes: whole sentences (no fragments, no headings), each once,
one unless a second adds what the question asks, with citation numbers in reading order."""

from __future__ import annotations

import pytest

from rag_service.citations import check_citations
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.text import whole_sentences
from rag_service.types import Chunk, GenerationParams

pytestmark = pytest.mark.unit

PARAMS = GenerationParams(temperature=0.1, top_p=0.9, max_tokens=64)
BUILDER = PromptBuilder(load_templates(None))


def passages(*texts: str) -> list[Chunk]:
    return [Chunk(f"c{n}", t, f"doc{n}.md", "Doc", (), 0, len(t)) for n, t in enumerate(texts, 1)]


def answer(question: str, *texts: str) -> str:
    return ExtractiveAnswerer().complete(BUILDER.build(question, passages(*texts)), PARAMS).text


def test_whole_sentences_undo_the_cuts_inside_a_sentence() -> None:
    text = (
        "Kojima et al. (2022) found that a phrase helps. In the case Mata v. Avianca, lawyers "
        "were fined. See Fig. 2 for it. Adapters (Houlsby et al.; 2019) came first. It is, "
        "e.g. the best. He said no. The end.\nA new line. 第二句（括号。内）完。"
    )
    sentences = whole_sentences(text)
    assert [s.text for s in sentences] == [
        "Kojima et al. (2022) found that a phrase helps.",
        "In the case Mata v. Avianca, lawyers were fined.",
        "See Fig. 2 for it.",
        "Adapters (Houlsby et al.; 2019) came first.",
        "It is, e.g. the best.",
        "He said no.",
        "The end.",
        "A new line.",
        "第二句（括号。内）完。",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_no_fragment_is_quoted() -> None:
    # Overlapping chunks start and end inside sentences: "2022) found", "and the", "in June of".
    whole = "Zero-shot reasoning needs no examples."
    for fragment in (
        "2022) found that appending a phrase elicits zero-shot reasoning. " + whole,
        "and the phrase that elicits zero-shot reasoning was found by Kojima. " + whole,
        whole + " The phrase that elicits zero-shot reasoning was reported in June of",
    ):
        quoted = answer("Which phrase elicits zero-shot reasoning?", fragment)
        assert quoted == f"{whole} [1]"


def test_a_sentence_after_an_abbreviation_is_quoted_whole() -> None:
    text = (
        "Chain of thought came first. Kojima et al. (2022) found that a phrase elicits reasoning."
    )
    quoted = answer("Who found that a phrase elicits reasoning?", text)
    assert quoted == "Kojima et al. (2022) found that a phrase elicits reasoning. [1]"


def test_headings_are_not_quoted_nor_glued_to_the_sentence() -> None:
    markdown = "## LoRA\nLoRA trains two low-rank matrices A and B."
    title = "Low-Rank Adaptation\nLoRA trains two low-rank matrices A and B."
    for text in (markdown, title):
        quoted = answer("What does LoRA train?", text)
        assert quoted == "LoRA trains two low-rank matrices A and B. [1]"


def test_a_sentence_in_two_overlapping_passages_is_quoted_once() -> None:
    whole = "LoRA trains two low-rank matrices A and B instead of the full weights."
    first = "Matrices A and B instead of the full weights. Adapters came before LoRA."  # cut
    second = f"Fine-tuning is costly. {whole} The weights stay frozen during training."
    third = f"{whole} Before LoRA came adapters."  # the same twice, nearly the same
    question = "What does LoRA train, and do the weights stay frozen?"
    prompt = BUILDER.build(question, passages(first, second, third))
    texts = [c.text for c in ExtractiveAnswerer().candidates(prompt)]
    assert [t for t in texts if "matrices a and b" in t.lower()] == [whole]  # whole, once
    assert [t for t in texts if "adapters" in t.lower()] == ["Adapters came before LoRA."]
    quoted = ExtractiveAnswerer().complete(prompt, PARAMS).text
    assert quoted == f"{whole} [2] The weights stay frozen during training. [2]"


def test_one_sentence_unless_the_second_adds_what_the_question_asks() -> None:
    text = (
        "Farmers shear them for wool. Llamas eat grass and hay. Wool is soft. Llamas live in "
        "the Andes."
    )
    assert answer("What do llamas eat?", text) == "Llamas eat grass and hay. [1]"
    both = answer("What do llamas eat, and where do they live?", text)
    assert both == "Llamas eat grass and hay. [1] Llamas live in the Andes. [1]"


def test_a_sentence_that_refers_back_completes_the_best_one() -> None:
    text = (
        "近似最近邻算法以牺牲少量召回率为代价换取大幅提速。最常用的是 HNSW，由 Malkov 提出。"
        "向量可以压缩。"
    )
    quoted = answer("向量数据库用什么近似最近邻算法？", text)
    assert quoted == (
        "近似最近邻算法以牺牲少量召回率为代价换取大幅提速。[1]最常用的是 HNSW，由 Malkov 提出。[1]"
    )


def test_citation_numbers_read_in_order_and_point_at_their_passages() -> None:
    # The best sentence is in passage 2; the second, which adds "wool", is in passage 1.
    first = "Farmers shear llamas for wool every spring."
    second = "Llamas eat grass and hay in the Andes."
    question = "What do llamas eat in the Andes, and what are they sheared for?"
    chunks = passages(first, second)
    text = ExtractiveAnswerer().complete(BUILDER.build(question, chunks), PARAMS).text
    assert text == f"{first} [1] {second} [2]"
    checked = check_citations(text, chunks, 0.5)
    assert checked.dropped == 0
    assert [(c.n, c.chunk_id, c.quote) for c in checked.citations] == [
        (1, "c1", first),
        (2, "c2", second),
    ]

"""The answering pipeline over a real index (real embedder, real Chroma), with the
deterministic fake LLM, the extractive answerer and an OpenAI-compatible backend whose server
is gone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.reindex import reindex
from rag_service.answering import UNVERIFIED, Answer, AnswerService, Delta, Question
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.llms.fake import FakeLLM
from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.llms.openai import OpenAICompatibleLLM
from rag_service.prompting import REFUSALS, PromptBuilder, load_templates
from rag_service.protocols import LLM
from rag_service.serving import SearchService
from rag_service.settings import LLMSettings, Settings
from rag_service.similarity import SentenceSimilarity
from rag_service.types import GenerationParams, Message
from tests.conftest import CountingEmbedder
from tests.servers import free_port

pytestmark = pytest.mark.integration

PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)
ServiceFor = Callable[..., AnswerService]


@pytest.fixture
def service_for(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder
) -> Iterator[ServiceFor]:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    search = SearchService(settings, embedder)
    made: list[AnswerService] = []

    def make(llm: LLM, fallback: bool = False, quoter: LLM | None = None) -> AnswerService:
        prompts = PromptBuilder(load_templates(None))
        stand_in = ExtractiveAnswerer(settings.answer.extractive_sentences) if fallback else None
        made.append(
            AnswerService(search, llm, prompts, settings.answer, fallback=stand_in, quoter=quoter)
        )
        return made[-1]

    yield make
    # Closed here, not by the garbage collector: an HTTP client collected later logs its pool's
    # closing into whichever test is capturing logs then (test_e5 counts its log lines).
    for service in made:
        service.close()
    search.close()


def test_answers_from_the_passages_with_a_verified_citation(service_for: ServiceFor) -> None:
    fake = FakeLLM()
    history = (Message("user", "Tell me about transformers."), Message("assistant", "Sure."))
    answer = service_for(fake).ask(
        Question("How many heads did the original transformer use?", PARAMS, history=history)
    )
    assert answer.answerable and answer.language == "en" and answer.coverage > 0.55
    [prompt] = fake.prompts
    assert [m.role for m in prompt.messages] == ["system", "user", "assistant", "user"]
    assert prompt.passages[0].source == "attention.md"
    assert prompt.passages[0].text in prompt.messages[-1].content
    assert answer.citations and answer.citations[0].chunk_id == answer.passages[0].chunk.id
    assert answer.dropped_citations == 0
    assert answer.usage is not None and answer.usage.prompt_tokens > 50
    timings = answer.timings
    assert timings.generate_ms > 0 and timings.total_ms > timings.generate_ms


@pytest.mark.parametrize(
    ("reply", "dropped"),
    [("Eight heads, said Vaswani's parrot [1].", 1), ("Eight heads, as everyone knows.", 0)],
)
def test_an_llm_answer_with_no_verified_citation_is_replaced_by_a_quote(
    service_for: ServiceFor, reply: str, dropped: int
) -> None:
    question = Question("How many heads did the original transformer use?", PARAMS)
    answer = service_for(FakeLLM(reply)).ask(question)
    assert answer.answerable and answer.backend == "extractive"
    assert answer.fallback_reason == UNVERIFIED and answer.dropped_citations == dropped
    assert "parrot" not in answer.answer and "everyone" not in answer.answer
    assert answer.citations and answer.citations[0].source == "attention.md"
    assert answer.usage is not None  # the LLM's, which was asked

    _, events = service_for(FakeLLM(reply)).ask_stream(question)
    *deltas, final = list(events)
    assert "".join(d.text for d in deltas if isinstance(d, Delta)) == reply  # already out
    assert isinstance(final, Answer) and final.answer == answer.answer


class UncitedQuoter(FakeLLM):
    backend = "uncited"  # not the LLM's backend, so it is asked


def test_with_nothing_verified_to_quote_either_it_is_a_refusal(service_for: ServiceFor) -> None:
    question = Question("How many heads did the original transformer use?", PARAMS)
    llm, quoter = FakeLLM("Nine, said the parrot [1]."), UncitedQuoter("Nine, I think.")
    answer = service_for(llm, quoter=quoter).ask(question)
    assert not answer.answerable and answer.refusal_reason == "unverified"
    assert answer.answer == REFUSALS["en"] and answer.citations == ()
    assert answer.dropped_citations == 1


def test_weak_evidence_is_refused_without_calling_the_llm(service_for: ServiceFor) -> None:
    fake = FakeLLM()
    answer = service_for(fake).ask(Question("Who painted the Mona Lisa in Florence?", PARAMS))
    assert not answer.answerable and answer.refusal_reason == "weak_evidence"
    assert answer.answer == REFUSALS["en"] and answer.citations == ()
    assert fake.prompts == []
    zh = service_for(fake).ask(Question("蒙娜丽莎是谁画的？", PARAMS))
    assert zh.answer == REFUSALS["zh"] and fake.prompts == []


def test_an_llm_that_declines_is_a_refusal(service_for: ServiceFor) -> None:
    answer = service_for(FakeLLM(reply=REFUSALS["zh"])).ask(Question("HNSW 怎样搜索？", PARAMS))
    assert not answer.answerable and answer.refusal_reason == "llm_declined"


def test_invented_citations_are_dropped(service_for: ServiceFor) -> None:
    reply = "Each token is projected into a query, a key and a value [1]. Heads vary [12]."
    answer = service_for(FakeLLM(reply=reply)).ask(Question("What is self-attention?", PARAMS))
    assert answer.dropped_citations == 1 and "[12]" not in answer.answer
    assert [c.n for c in answer.citations] == [1]


def test_streaming_yields_deltas_then_the_checked_answer(service_for: ServiceFor) -> None:
    found, events = service_for(FakeLLM()).ask_stream(Question("向量数据库用什么算法？", PARAMS))
    assert found.passages[0].chunk.source == "向量数据库.md"
    events = list(events)
    deltas, final = events[:-1], events[-1]
    assert all(isinstance(e, Delta) for e in deltas) and len(deltas) > 1
    assert isinstance(final, Answer) and final.answerable and final.citations
    assert "".join(e.text for e in deltas if isinstance(e, Delta)).startswith(final.answer[:10])


def test_a_dead_llm_falls_back_to_extractive_when_configured(service_for: ServiceFor) -> None:
    dead = OpenAICompatibleLLM(
        LLMSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=5, max_retries=0)
    )
    answer = service_for(dead, fallback=True).ask(
        Question("What does multi-head attention do?", PARAMS)
    )
    assert answer.backend == "extractive" and "cannot reach the LLM" in (
        answer.fallback_reason or ""
    )
    assert answer.answerable and answer.citations

    _, events = service_for(dead, fallback=True).ask_stream(
        Question("What does multi-head attention do?", PARAMS)
    )
    final = list(events)[-1]
    assert isinstance(final, Answer) and final.backend == "extractive" and final.citations


@pytest.mark.slow
def test_in_process_llama_cpp_answers_plain_and_streamed(
    service_for: ServiceFor, gemma_gguf: Path
) -> None:
    llm = LlamaCppLLM(LLMSettings(model_path=gemma_gguf, n_ctx=4096, model="gemma"))
    service = service_for(llm)
    question = Question("How many heads did the original transformer use?", PARAMS)
    answer = service.ask(question)
    # Gemma 270M's own answer, or the documents' quote when none of its citations stood.
    assert (answer.backend, answer.model) == ("llamacpp", "gemma") or (
        answer.fallback_reason == UNVERIFIED
    )
    assert answer.prompt is not None and answer.passages
    assert answer.usage is not None and answer.usage.prompt_tokens > 100
    assert 0 < answer.usage.completion_tokens <= PARAMS.max_tokens

    _, events = service.ask_stream(question)
    events = list(events)
    final = events[-1]
    assert isinstance(final, Answer) and final.usage is not None
    deltas = [e.text for e in events if isinstance(e, Delta)]
    assert len(deltas) > 1 and final.usage.completion_tokens > 0
    # At temperature 0 the stream writes what a plain call writes.
    assert "".join(deltas) == llm.complete(answer.prompt, PARAMS).text


def test_coverage_alone_embeds_no_sentence(
    service_for: ServiceFor, embedder: CountingEmbedder
) -> None:
    # MiniLM's rule has no similarity weight: answering costs no embedding beyond the query's.
    before = embedder.texts_embedded
    answer = service_for(FakeLLM()).ask(Question("How does HNSW search a graph?", PARAMS))
    assert answer.similarity is None and embedder.texts_embedded == before
    assert answer.rule == "en"  # no cross-lingual rule unless configured (e5 brings one)


def test_sentence_similarity_is_the_best_sentence_and_remembers_it(
    embedder: CountingEmbedder,
) -> None:
    passage = (
        "The Great Wall of China was built over many centuries. "
        "Chlorophyll absorbs red and blue light and reflects green. "
        "Its walls stretch across the mountains of northern China."
    )
    question = "Which pigment absorbs red and blue light?"
    similarity = SentenceSimilarity(embedder, capacity=3)
    query = embedder.embed_query(question)
    best = similarity.best(query, passage)
    pigment = "Chlorophyll absorbs red and blue light and reflects green."
    alone = float(embedder.embed_documents([pigment])[0] @ query)
    whole = float(embedder.embed_documents([passage])[0] @ query)
    assert best == pytest.approx(alone, abs=1e-4) and best > whole + 0.1
    counted = embedder.texts_embedded
    assert similarity.best(embedder.embed_query("What reflects green?"), passage) is not None
    assert embedder.texts_embedded == counted  # its three sentences were kept
    similarity.best(query, "A fourth sentence pushes the oldest out.")
    similarity.best(query, passage)
    assert embedder.texts_embedded == counted + 2  # one new, then the oldest evicted again
    assert similarity.best(query, "   ") is None

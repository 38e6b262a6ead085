"""The reader that judges the evidence, with real models: Qwen2.5-Coder-1.5B-Instruct where the
test is about judgement (it tells a passage that answers from one on the same topic that does
not, in both languages, and reads only what changed since the last prompt), the 0.5B where it is
about the wiring (the cascade hands the judge the uncertain band; a judge that fails leaves the
decision to the rule)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.reindex import reindex
from rag_service.answering import AnswerService, Question
from rag_service.judging import build_judge
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.llms.packaged import PACKAGED_MODELS, assemble
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.protocols import EvidenceJudge
from rag_service.rerankers import build_reranker
from rag_service.rerankers.judge import JudgeReranker
from rag_service.serving import SearchService
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity
from rag_service.types import Chunk, GenerationParams
from tests.conftest import SMALL_READER, CountingEmbedder

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JUDGE_MODEL = "qwen2.5-coder-1.5b-instruct"
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)

EIFFEL = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. "
    "It was completed in 1889 as the entrance to the World's Fair, and is 330 metres tall."
)
HNSW = "HNSW 是一种基于分层图的近似最近邻搜索算法。向量数据库常用它建立索引，查询时从顶层逐层向下贪心搜索。"


@pytest.fixture(scope="module")
def judge_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models_dir = tmp_path_factory.mktemp("judge-models")
    assemble(PACKAGED_MODELS[JUDGE_MODEL], models_dir)
    return models_dir


@pytest.fixture(scope="module")
def judge(judge_models_dir: Path) -> Iterator[EvidenceJudge]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        judge={"backend": "llamacpp", "model": JUDGE_MODEL},
        embedder={"backend": "sentence-transformers", "models_dir": judge_models_dir},
    )
    built = build_judge(settings, ExtractiveAnswerer())
    assert built is not None
    yield built
    built.close()


def test_the_judge_tells_an_answer_from_a_passage_on_the_same_topic(judge: EvidenceJudge) -> None:
    answers = judge.judge("When was the Eiffel Tower completed?", "en", EIFFEL)
    misses = judge.judge("How many people visit the Eiffel Tower each year?", "en", EIFFEL)
    assert answers.probability > 0.8 > 0.3 > misses.probability
    zh_answers = judge.judge("向量数据库常用什么算法建立索引？", "zh", HNSW)
    zh_misses = judge.judge("HNSW 是哪一年由谁提出的？", "zh", HNSW)
    assert zh_answers.probability > 0.8 > 0.3 > zh_misses.probability


EIFFEL_NAME = (
    "The tower is named after the engineer Gustave Eiffel, whose company designed and built it. "
    "Locally nicknamed La dame de fer, it was criticised by some of France's leading artists."
)


def test_as_a_reranker_it_puts_the_passage_that_answers_first(
    judge: EvidenceJudge, embedder: CountingEmbedder, judge_models_dir: Path
) -> None:
    """The same article's other paragraph first, as fusion may order them: the judge swaps them,
    for an English question and for a Chinese one over the English passages."""
    reranker = JudgeReranker(judge, SentenceSimilarity(embedder), 160)
    on_topic = Chunk("name", EIFFEL_NAME, "eiffel.md", "Eiffel Tower", (), 0, len(EIFFEL_NAME))
    answers = Chunk("built", EIFFEL, "eiffel.md", "Eiffel Tower", (), 300, 300 + len(EIFFEL))
    for question in ("When was the Eiffel Tower completed?", "埃菲尔铁塔是哪一年建成的？"):
        near, right = reranker.rerank(question, [on_topic, answers])
        assert right > near, (question, near, right)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        retrieval={"reranker": "judge"},
        judge={"model": JUDGE_MODEL},  # its backend may stay off: the reranker has its own
        embedder={"backend": "sentence-transformers", "models_dir": judge_models_dir},
    )
    built = build_reranker(settings, embedder)
    assert built is not None and built.name == f"judge:{JUDGE_MODEL}"
    built.close()


def test_a_prompt_that_shares_its_start_with_the_last_one_is_read_from_there(
    judge: EvidenceJudge,
) -> None:
    first = judge.judge("How tall is the Eiffel Tower?", "en", EIFFEL)
    again = judge.judge("Where is the Eiffel Tower?", "en", EIFFEL)  # same system and passage
    assert first.prompt_tokens > 60
    assert again.evaluated_tokens < 40 < again.prompt_tokens - again.evaluated_tokens
    other = judge.judge("How tall is the Eiffel Tower?", "en", "The Louvre is a museum in Paris.")
    assert other.evaluated_tokens < other.prompt_tokens  # the system prompt is still kept


@pytest.fixture
def answerer_with_judge(
    make_settings: Callable[..., Settings],
    embedder: CountingEmbedder,
    small_reader_models_dir: Path,
) -> Callable[..., AnswerService]:
    def make(**judging: object) -> AnswerService:
        settings = make_settings(
            judge={"backend": "llamacpp", "model": SMALL_READER, **judging},
            embedder={"backend": "sentence-transformers", "models_dir": small_reader_models_dir},
        )
        reindex(settings, embedder=embedder)
        llm = ExtractiveAnswerer()
        return AnswerService(
            SearchService(settings, embedder),
            llm,
            PromptBuilder(load_templates(None)),
            settings.answer,
            judge=build_judge(settings, llm),
            judging=settings.judge,
        )

    return make


def test_the_judge_decides_the_band_and_the_rule_the_rest(
    answerer_with_judge: Callable[..., AnswerService],
) -> None:
    question = Question("How many heads did the original transformer use?", PARAMS)
    everything = answerer_with_judge(band_below=100, band_above=100, min_probability_en=0.0)
    try:
        judged = everything.ask(question)
        assert judged.decided_by == "judge" and judged.judgement is not None
        assert 0.0 <= judged.judgement.probability <= 1.0
        assert judged.answerable  # any probability reaches a minimum of 0
        assert judged.timings.judge_ms > 0 and judged.timings.total_ms > judged.timings.judge_ms
    finally:
        everything.close()
    no_band = answerer_with_judge(band_below=0, band_above=0)
    try:
        ruled = no_band.ask(question)
        assert ruled.decided_by == "rule" and ruled.judgement is None
        assert ruled.answerable and ruled.timings.judge_ms == 0
    finally:
        no_band.close()


def test_a_judge_that_fails_leaves_the_decision_to_the_rule(
    answerer_with_judge: Callable[..., AnswerService],
) -> None:
    service = answerer_with_judge(band_below=100, band_above=100, timeout_s=0.001)
    try:
        answer = service.ask(Question("How many heads did the original transformer use?", PARAMS))
        refused = service.ask(Question("Who painted the Mona Lisa in Florence?", PARAMS))
    finally:
        service.close()
    assert answer.decided_by == "rule_judge_failed" and answer.judgement is None
    assert answer.answerable and "[1]" in answer.answer
    assert refused.decided_by == "rule_judge_failed" and not refused.answerable

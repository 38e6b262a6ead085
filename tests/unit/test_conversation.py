"""The rule that makes a follow-up standalone, and the LLM condense step with the fake LLM."""

from __future__ import annotations

import pytest

from rag_service.conversation import (
    LLMCondenser,
    RuleCondenser,
    build_condenser,
    needs_context,
    refers_back,
)
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.llms.fake import FakeLLM
from rag_service.prompting import REFUSALS, load_templates
from rag_service.settings import ConversationSettings, Settings
from rag_service.types import Message

pytestmark = pytest.mark.unit


def chat(*turns: str) -> tuple[Message, ...]:
    """User and assistant turns, alternating, the user first."""
    roles = ("user", "assistant")
    return tuple(Message(roles[i % 2], text) for i, text in enumerate(turns))


@pytest.mark.parametrize(
    "question",
    [
        "Who introduced it?",
        "How many of them are activated per token?",
        "How many parameters did that model have?",
        "What about GShard?",
        "And Llama 2's?",
        "它是谁提出的？",
        "这篇论文的第一作者是谁？",
        "其中的常数 k 一般取多少？",
        "该方法是哪一年提出的？",
        "那是哪一年？",
        "GShard 呢？",
        "哪些模型采用了它们？",
    ],
)
def test_questions_that_refer_back(question: str) -> None:
    assert refers_back(question) and needs_context(question)


@pytest.mark.parametrize(
    "question",
    [
        "What does LoRA train instead of the full weights?",
        "Which algorithm does Chroma use to index vectors?",
        "How many parameters did Chinchilla have?",
        "其他方法为什么不行？",  # 其他 is "other", not a pointer back
        "因此 LoRA 应该怎样合并回权重？",  # nor are 因此 and 应该
        "Chroma 用什么算法建立索引？",
    ],
)
def test_self_contained_questions_do_not_refer_back(question: str) -> None:
    assert not refers_back(question) and not needs_context(question)


def test_a_question_with_no_word_of_its_own_needs_context() -> None:
    assert not refers_back("When?") and needs_context("When?")
    assert needs_context("为什么？") and needs_context("哪一年？")
    # One word of its own is a topic: a short question is not a follow-up for being short.
    assert not needs_context("What is DPO?") and not needs_context("什么是嵌入？")


def test_the_rule_adds_the_previous_questions_words_to_a_follow_up() -> None:
    rule = RuleCondenser()
    history = chat("What is DPO?", "Direct Preference Optimization (DPO) ... [1]")
    assert rule.standalone("Who introduced it?", history) == "Who introduced it? (DPO)"
    history = chat("DPO 是什么？", "DPO（直接偏好优化）…… [1]")
    assert rule.standalone("它是谁提出的？", history) == "它是谁提出的？ (DPO)"


def test_the_rule_carries_the_topic_through_a_third_turn() -> None:
    history = chat(
        "Who first described Byte Pair Encoding?", "Philip Gage [1]", "When?", "1994 [1]"
    )
    resolved = RuleCondenser().standalone("Which model introduced the byte-level version?", history)
    assert resolved == "Which model introduced the byte-level version?"  # it stands on its own
    third = RuleCondenser().standalone("Which model introduced its byte-level version?", history)
    # "When?" was resolved with the first question's words, and passes them on; "byte" is the
    # follow-up's own word already.
    assert third == "Which model introduced its byte-level version? (first described Pair Encoding)"


def test_self_contained_questions_and_topic_switches_are_left_alone() -> None:
    rule = RuleCondenser()
    history = chat("What is DPO?", "Direct Preference Optimization [1]")
    for question in ("What does HNSW stand for?", "Chroma 默认的距离函数是什么？", "什么是嵌入？"):
        assert rule.standalone(question, history) == question
    assert rule.standalone("Who introduced it?", ()) == "Who introduced it?"  # no history


SETTINGS = ConversationSettings()
TEMPLATES = load_templates(None, task="condense")
DPO = chat("What is DPO?", "Direct Preference Optimization (DPO), introduced by Rafailov. [1]")


def test_the_llm_condenses_history_and_question_into_one_line() -> None:
    fake = FakeLLM(reply="Who introduced DPO?\nDPO was introduced by Rafailov.")
    condenser = LLMCondenser(fake, SETTINGS, TEMPLATES)
    assert condenser.standalone("Who introduced it?", DPO) == "Who introduced DPO?"
    [prompt] = fake.prompts
    assert prompt.passages == () and prompt.language == "en"
    user = prompt.messages[-1].content
    assert "User: What is DPO?" in user and "Assistant: Direct Preference" in user
    assert "Last question: Who introduced it?" in user


def test_the_condense_prompt_is_bounded() -> None:
    fake = FakeLLM(reply="Who introduced DPO?")
    settings = ConversationSettings(history_messages=2)
    long_history = chat("first question", "x" * 5000, "What is DPO?", "y" * 5000)
    LLMCondenser(fake, settings, TEMPLATES).standalone("Who introduced it?", long_history)
    user = fake.prompts[0].messages[-1].content
    assert "first question" not in user and "x" * 401 not in user and "y" * 400 + "…" in user
    assert len(user) < 1000


def test_the_condense_template_is_in_the_questions_language() -> None:
    fake = FakeLLM(reply="它是谁提出的 DPO？")
    history = chat("DPO 是什么？", "直接偏好优化 [1]")
    assert LLMCondenser(fake, SETTINGS, TEMPLATES).standalone("它是谁提出的？", history) == (
        "它是谁提出的 DPO？"
    )
    assert "最后一个问题：它是谁提出的？" in fake.prompts[0].messages[-1].content


@pytest.mark.parametrize(
    "reply",
    [
        REFUSALS["en"],  # the fake LLM's own reply to a prompt without passages
        "谁提出了 DPO？",  # not the question's language
        "",
    ],
)
def test_an_unusable_rewrite_falls_back_to_the_rule(reply: str) -> None:
    condenser = LLMCondenser(FakeLLM(reply=reply), SETTINGS, TEMPLATES)
    assert condenser.standalone("Who introduced it?", DPO) == "Who introduced it? (DPO)"


def test_a_rewrite_past_its_time_falls_back_to_the_rule() -> None:
    slow = ConversationSettings(timeout_s=1e-9)
    condenser = LLMCondenser(FakeLLM(reply="Who introduced DPO?"), slow, TEMPLATES)
    assert condenser.standalone("Who introduced it?", DPO) == "Who introduced it? (DPO)"


def test_no_history_no_call() -> None:
    fake = FakeLLM(reply="something else")
    assert LLMCondenser(fake, SETTINGS, TEMPLATES).standalone("What is DPO?", ()) == "What is DPO?"
    assert fake.prompts == []


def test_the_setting_chooses_the_condenser() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert isinstance(build_condenser(settings, ExtractiveAnswerer()), RuleCondenser)
    assert isinstance(build_condenser(settings, FakeLLM()), LLMCondenser)
    rule = settings.model_copy(update={"conversation": ConversationSettings(condense="rule")})
    assert isinstance(build_condenser(rule, FakeLLM()), RuleCondenser)

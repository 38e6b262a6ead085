"""Chat clients' background tasks: recognised from the exact bodies the clients send, answered in
what they parse, and ordinary questions left alone.

The Open WebUI fixtures in tests/data/chat_tasks/ are request bodies Open WebUI 0.12.4 sent to
/v1/chat/completions in bench/open_webui_chat.py's run (``--capture``; the questions' ``tools``
list left out), except ``*.rendered.json``: query generation and autocompletion, off in that run,
rendered from its DEFAULT_*_PROMPT_TEMPLATE the way its utils/task.py renders them. The LobeChat
one is built from its chainSummaryTitle (packages/prompts/src/chains/summaryTitle.ts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag_service.chat_tasks import ChatTask, recognise, reply, title
from rag_service.types import Message

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "chat_tasks"


def body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


def messages(request: dict[str, Any]) -> list[Message]:
    return [Message(m["role"], m["content"]) for m in request["messages"]]


def open_webui_parse(content: str, key: str) -> Any:
    """What Open WebUI 0.12.4 does with a task's reply (utils/middleware.py, utils/task.py):
    the text between the first ``{`` and the last ``}``, as JSON, then the key."""
    return json.loads(content[content.find("{") : content.rfind("}") + 1])[key]


def task(name: str) -> ChatTask:
    found = recognise(messages(body(name)))
    assert found is not None, name
    return found


# Each task named in a fixture's name: its kind, the key Open WebUI reads, and what it gets.
EXPECTED: dict[str, tuple[str, str, Any]] = {
    "title": ("title", "title", ["What is DPO", "DPO 是什么"]),
    "tags": ("tags", "tags", [[]]),
    "follow-ups": ("follow_ups", "follow_ups", [[]]),
    "queries": ("queries", "queries", [["Who introduced it? (DPO)"]]),
    "autocomplete": ("autocomplete", "text", [""]),
}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("open-webui-*.json")))
def test_every_body_open_webui_sent_is_told_apart(name: str) -> None:
    """Its tasks recognised, each reply parsed as Open WebUI parses it; its questions (turns
    one and two, history included) left to the pipeline."""
    named = name.split(".")[0].removeprefix("open-webui-")
    found = recognise(messages(body(name)))
    if named == "question":
        assert found is None
        return
    kind, key, expected = EXPECTED[named]
    assert found is not None and (found.kind, found.client) == (kind, "open-webui")
    assert open_webui_parse(reply(found), key) in expected


def test_a_title_is_the_question_in_its_language() -> None:
    assert open_webui_parse(reply(task("open-webui-title.en.json")), "title") == "What is DPO"
    assert open_webui_parse(reply(task("open-webui-title.zh.json")), "title") == "DPO 是什么"


def test_follow_ups_see_the_whole_conversation() -> None:
    history = task("open-webui-follow-ups.zh.turn2.json").history
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[2].content == "它是谁提出的？" and "Rafailov" in history[3].content


def test_lobechat_title_is_plain_text() -> None:
    found = task("lobechat-title.zh.json")
    assert (found.kind, found.client) == ("title", "lobechat")
    assert reply(found) == "向量数据库用什么算法检索最相近的片段"


@pytest.mark.parametrize(
    "conversation",
    [
        [Message("user", "What is DPO?")],
        [Message("system", "Be brief."), Message("user", "向量数据库用什么算法？")],
        # A user who pastes a task-shaped prompt mid-conversation is asking a question.
        [
            Message("user", "What is DPO?"),
            Message("assistant", "Direct Preference Optimization [1]."),
            Message("user", "### Task:\nSummarise\n<chat_history>\nUSER: hi\n</chat_history>"),
        ],
        # The shape without an output key Open WebUI's tasks name.
        [
            Message(
                "user", "### Task:\nExplain\n<chat_history>\nUSER: What is DPO?\n</chat_history>"
            )
        ],
        [Message("user", 'Why does Open WebUI send "### Task:" and <chat_history> to models?')],
    ],
)
def test_questions_are_not_tasks(conversation: list[Message]) -> None:
    assert recognise(conversation) is None


def test_title_is_cut_at_a_word() -> None:
    long = "How does the router of a mixture-of-experts layer choose the experts for each token?"
    assert title(long) == "How does the router of a mixture-of-experts layer"
    assert title("  “什么是   嵌入？”  ") == "什么是 嵌入"

"""The page as a chat, in a real headless Chromium, over the shipped corpus: a three-turn
conversation in English and one in Chinese (corpus/CONVERSATIONS.jsonl), each follow-up sent with
the thread so far as history and answered from the right note; a citation of the second turn
opens its quote; after a reload the thread is there (its citations still open), listed, and can
be left for a new one, reopened and deleted. Skipped, with the reason, where no Chromium is
installed. The server runs on the default embedder, e5, which reads Chinese (the suite's MiniLM
does not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import accept_dialogs, ask
from tests.servers import api_server, rag_reindex

pytestmark = [pytest.mark.api, pytest.mark.slow]

CORPUS = Path(__file__).parents[2] / "corpus"
CONVERSATIONS = {
    json.loads(line)["cid"]: json.loads(line)
    for line in (CORPUS / "CONVERSATIONS.jsonl").read_text(encoding="utf-8").splitlines()
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chat")
    env = {
        "RAG_DATA_DIR": str(root / "data"),
        "RAG_CORPUS_DIR": str(CORPUS),
        "RAG_EMBEDDER__BACKEND": "e5",
    }
    rag_reindex(env, root)
    with api_server(root, env) as base:
        yield base


def _histories(page: Any) -> list[list[dict[str, str]]]:
    """The history of every /v1/ask the page sends from now on."""
    sent: list[list[dict[str, str]]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data)["history"]) if "/v1/ask" in r.url else None,
    )
    return sent


@pytest.mark.parametrize(
    ("locale", "cid", "label", "new_thread"),
    [
        ("en-US", "conv-en-001", "Question", "New thread"),
        ("zh-CN", "conv-zh-001", "问题", "新对话"),
    ],
)
def test_a_three_turn_conversation_survives_a_reload(
    browser: Any, url: str, locale: str, cid: str, label: str, new_thread: str
) -> None:
    page = browser.new_page(locale=locale, viewport={"width": 390, "height": 844})  # a phone
    accept_dialogs(page)
    histories = _histories(page)
    page.goto(url)
    # An empty thread offers the default collection's examples (RAG_API__EXAMPLE_QUESTIONS).
    page.locator("#examples button", has_text="LoRA").wait_for()

    turns = CONVERSATIONS[cid]["turns"]
    for i, turn in enumerate(turns):
        shown = ask(page, turn["question"], label)
        text = shown.locator(".answer").text_content() or ""
        assert any(a in text for a in turn["answers"]), (turn["question"], text)
        assert page.evaluate("document.activeElement.id") == "question"  # ready for the next
        # Each question goes with the thread so far: the questions and the answers.
        assert [m["role"] for m in histories[i]] == ["user", "assistant"] * i
        assert [m["content"] for m in histories[i][::2]] == [t["question"] for t in turns[:i]]
    assert page.locator("#examples").is_hidden()

    second = page.locator(".turn").nth(1)
    assert second.locator("h3").text_content().endswith(turns[1]["question"])
    _open_citation(page, second, turns[1]["gold_doc_ids"][0])

    page.reload()
    page.locator(".turn").nth(2).wait_for()
    assert page.locator(".turn h3").all_text_contents() == [
        page.locator(".turn h3 .sr-only").first.text_content() + t["question"] for t in turns
    ]
    _open_citation(page, page.locator(".turn").nth(1), turns[1]["gold_doc_ids"][0])
    listed = page.locator("#threads button.open")
    assert listed.all_text_contents() == [turns[0]["question"]]
    assert listed.first.get_attribute("aria-current") == "true"

    # A new thread, then back to this one from the list, then deleted.
    page.get_by_role("button", name=new_thread).click()
    assert page.locator(".turn").count() == 0
    page.locator("#examples").wait_for()
    page.locator("#threads-box summary").click()  # the list is folded at phone width
    listed.first.click()
    assert page.locator(".turn").count() == 3
    page.locator("#threads button.remove").click()
    assert page.locator(".turn").count() == 0 and listed.count() == 0
    page.reload()
    assert page.locator(".turn").count() == 0 and listed.count() == 0
    page.close()


def _open_citation(page: Any, turn: Any, source: str) -> None:
    cite = turn.locator("button.cite").first
    quote = cite.get_attribute("data-quote")
    cite.click()
    assert page.locator("dialog[open] mark").text_content() == quote
    assert (page.locator("#doc-meta").text_content() or "").startswith(source)
    page.keyboard.press("Escape")
    page.locator("dialog[open]").wait_for(state="detached")

"""The page at / in a real headless Chromium (Debian's package, driven by Playwright): ask,
wait for the streamed answer, open a citation, and find the quote highlighted; an answer or a
passage holding markup renders as text. Skipped, with the reason, only where no Chromium is
installed (`make install-dev` installs it where it can)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import CHROMIUM_ARGS, api_server

pytestmark = [pytest.mark.api, pytest.mark.slow]

CHROMIUM = Path(os.environ.get("RAG_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make install-dev)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def url(indexed_docs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("page")
    docs = Path(indexed_docs["RAG_CORPUS_DIR"])
    # A hostile passage: if the page ever parsed text as HTML, this would run.
    (docs / "hostile.md").write_text(
        "# Hostile\n\nThe hostile beacon <img src=x onerror=\"document.title='pwned'\"> "
        "glows <script>document.title='pwned'</script> every night.\n",
        encoding="utf-8",
    )
    from ingest.reindex import reindex
    from rag_service.settings import Settings

    settings = Settings(_env_file=None, data_dir=indexed_docs["RAG_DATA_DIR"], corpus_dir=docs)  # type: ignore[call-arg]
    reindex(settings)
    with api_server(root, indexed_docs) as base:
        yield base
    (docs / "hostile.md").unlink()


@pytest.mark.parametrize(("locale", "question", "label"), [
    ("en-US", "How many heads did the original transformer use?", "Question"),
    ("zh-CN", "向量数据库用什么算法检索最相近的片段？", "问题"),
])  # fmt: skip
def test_ask_stream_and_open_a_citation(
    browser: Any, url: str, locale: str, question: str, label: str, tmp_path: Path
) -> None:
    page = browser.new_page(locale=locale, viewport={"width": 390, "height": 844})  # a phone
    page.goto(url)
    page.get_by_label(label).fill(question)
    page.keyboard.press("Enter")
    cite = page.locator("button.cite").first
    cite.wait_for()
    assert page.locator("#passages li").count() >= 1
    assert len(re.findall(r"\d+", page.locator("#index").text_content() or "")) == 3
    quote = cite.get_attribute("data-quote")
    cite.click()
    mark = page.locator("dialog[open] mark")
    assert mark.text_content() == quote
    page.keyboard.press("Escape")  # the dialog closes from the keyboard
    assert page.locator("dialog[open]").count() == 0
    page.screenshot(path=str(tmp_path / f"page-{locale}.png"), full_page=True)
    page.close()


def test_refusal_state_and_hostile_markup_stay_text(browser: Any, url: str) -> None:
    page = browser.new_page(locale="en-US")
    page.goto(url)
    page.get_by_label("Question").fill("What is the capital of Peru?")
    page.get_by_role("button", name="Ask").click()
    page.locator("#refusal:not([hidden])").wait_for()
    assert "do not answer" in (page.locator("#refusal").text_content() or "")
    assert page.locator("button.cite").count() == 0
    page.get_by_label("Question").fill("What does the hostile beacon do every night?")
    page.get_by_role("button", name="Ask").click()
    page.locator("#status", has_text="Answered").wait_for()
    passages = page.locator("#passages").text_content() or ""
    assert "<script>" in passages or "<img" in passages  # shown as text, not parsed
    assert page.locator("#passages img, #answer img, #passages script").count() == 0
    assert page.title() != "pwned"
    page.close()

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


def _accept_dialogs(page: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def _wait_job(page: Any, expect: str) -> str:
    """Waits until the page shows its document job finished; returns the status text."""
    page.locator("#upload-status[data-state=done], #upload-status[data-state=failed]").wait_for()
    status = page.locator("#upload-status").text_content() or ""
    assert expect in status, status
    return status


def _create(page: Any, name: str) -> None:
    page.get_by_label("New collection").fill(name)
    page.get_by_role("button", name="Create").click()
    page.locator("#manage-status", has_text=name).wait_for()
    page.wait_for_function("(n) => document.getElementById('collection').value === n", arg=name)


# Every text the upload status shows, in order: the bytes sent, then the job's states.
WATCH = """() => {
  const status = document.getElementById("upload-status");
  window.shown = [];
  new MutationObserver(() => window.shown.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}"""

DROP = """([name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: "text/markdown" }));
  const zone = document.getElementById("drop");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
  }
}"""


def test_collection_upload_ask_and_delete(browser: Any, url: str, tmp_path: Path) -> None:
    import httpx

    page = browser.new_page(locale="en-US")
    _accept_dialogs(page)
    page.goto(url)
    # The selector is filled from /v1/collections after the page loads.
    page.locator("#collection option[value='default']").wait_for(state="attached")
    assert page.locator("#collection").input_value() == "default"
    assert page.locator("#delete-collection").is_disabled()
    _create(page, "notes")
    assert page.locator("#docs", has_text="No documents yet").count() == 1

    zebra = tmp_path / "zebra.md"
    zebra.write_text(
        "# Zebra moon\n\nThe zebra moon festival is held every April in Quokka town, where "
        "lanterns shaped like zebras float on the river.\n",
        encoding="utf-8",
    )
    cats = tmp_path / "cats.txt"
    cats.write_text("Cats sleep for most of the day and hunt at dusk.\n", encoding="utf-8")
    page.evaluate(WATCH)
    page.get_by_label("Files to upload").set_input_files([str(zebra), str(cats)])
    status = _wait_job(page, "Done")
    assert "2 added" in status and "chunks embedded" in status
    shown = page.evaluate("window.shown")
    sent = [re.fullmatch(r"Uploading: (\d+) B of (\d+) B sent\.", s) for s in shown]
    body = [int(m[2]) for m in sent if m and m[1] == m[2]]  # the whole multipart body sent
    assert body and body[0] > zebra.stat().st_size + cats.stat().st_size, shown
    job = [s.split(" · ")[0] in {"Queued", "Indexing", "Done"} for s in shown]
    assert any(sent[: job.index(True)]), shown  # the bytes went out before the job was polled
    for name in ("zebra.md", "cats.txt"):
        row = page.locator(f"#docs tr[data-path='{name}']")
        row.wait_for()
        assert int(row.locator("td.num").first.text_content() or "0") >= 1
        assert "utf-8" in (row.text_content() or "")

    # A real drop on the drop zone, with a DataTransfer built in the page.
    page.evaluate(DROP, ["owls.md", "# Owls\n\nOwls hunt mice at night over the meadow.\n"])
    page.locator("#docs tr[data-path='owls.md']").wait_for()
    assert "1 added" in _wait_job(page, "Done")
    assert "3 sources" in (page.locator("#index").text_content() or "")

    # The choice survives a reload (sessionStorage) and the question box asks in it.
    page.reload()
    page.locator("#docs tr[data-path='zebra.md']").wait_for()
    assert page.locator("#collection").input_value() == "notes"
    page.get_by_label("Question").fill("When is the zebra moon festival held?")
    page.get_by_role("button", name="Ask").click()
    cite = page.locator("button.cite").first
    cite.wait_for()
    quote = cite.get_attribute("data-quote")
    cite.click()
    assert page.locator("dialog[open] mark").text_content() == quote
    assert (page.locator("#doc-meta").text_content() or "").startswith("zebra.md")
    page.keyboard.press("Escape")

    page.get_by_role("button", name="Delete zebra.md").click()
    page.locator("#docs tr[data-path='zebra.md']").wait_for(state="detached")
    assert "1 deleted" in _wait_job(page, "Done")
    assert page.locator("#docs tr[data-path='cats.txt']").count() == 1
    found = httpx.post(
        f"{url}/v1/search", json={"query": "zebra moon festival", "collection": "notes"}
    )
    assert found.status_code == 200, found.text
    assert "zebra.md" not in {p["source"] for p in found.json()["passages"]}
    page.close()


def test_upload_errors_hostile_names_and_collection_delete(
    browser: Any, url: str, tmp_path: Path
) -> None:
    page = browser.new_page(locale="en-US")
    _accept_dialogs(page)
    page.goto(url)
    _create(page, "scratch")
    page.get_by_label("Files to upload").set_input_files(
        [{"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}]
    )
    error = page.locator("#upload-error:not([hidden])")
    error.wait_for()
    assert "not a supported format" in (error.text_content() or "")
    assert "request id" in (error.text_content() or "")

    hostile = "<img src=x onerror=document.title=1>.md"
    page.get_by_label("Files to upload").set_input_files(
        [{"name": hostile, "mimeType": "text/markdown", "buffer": b"# Beacon\n\nA beacon.\n"}]
    )
    _wait_job(page, "Done")
    page.locator("#docs .path", has_text="<img").wait_for()
    assert page.locator("#docs img, #manage-status img, #upload-status img").count() == 0
    assert page.title() != "1"

    page.get_by_label("New collection").fill(".hidden")
    page.get_by_role("button", name="Create").click()
    page.locator("#manage-error:not([hidden])").wait_for()
    assert "cannot name a collection" in (page.locator("#manage-error").text_content() or "")

    page.get_by_role("button", name="Delete collection").click()
    page.locator("#manage-status", has_text="Deleted").wait_for()
    # The selector is refilled from /v1/collections after the deletion.
    page.locator("#collection option[value=scratch]").wait_for(state="detached")
    assert page.locator("#collection").input_value() == "default"
    assert page.locator("#collection option[value=scratch]").count() == 0
    page.close()


def test_a_collection_named_in_chinese_from_the_page(browser: Any, url: str) -> None:
    page = browser.new_page(locale="en-US")
    _accept_dialogs(page)
    page.goto(url)
    _create(page, "员工手册")
    page.get_by_label("Files to upload").set_input_files(
        [{"name": "年假.md", "mimeType": "text/markdown", "buffer": "# 年假\n\n十五天。".encode()}]
    )
    assert "1 added" in _wait_job(page, "Done")
    page.locator("#docs tr[data-path='年假.md']").wait_for()
    page.get_by_role("button", name="Delete collection").click()
    page.locator("#manage-status", has_text="Deleted").wait_for()
    page.locator("#collection option[value='员工手册']").wait_for(state="detached")
    page.close()


def test_documents_panel_speaks_chinese(browser: Any, url: str) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(url)
    page.locator("#docs tr[data-path]").first.wait_for()  # the default collection's documents
    assert page.get_by_label("要上传的文件").count() == 1
    assert page.get_by_label("新建文档集").count() == 1
    assert page.locator("#docs-table th").first.text_content() == "文档"
    page.close()

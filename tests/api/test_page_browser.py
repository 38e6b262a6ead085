"""The page at / in a real headless Chromium (Debian's package, driven by Playwright): ask,
wait for the streamed answer, open a citation, and find the quote highlighted; an answer or a
passage holding markup renders as text; uploads are offered only where they can land. Skipped,
with the reason, only where no Chromium is installed (`make install-dev` installs it where it
can)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    accept_dialogs,
    ask,
    create_collection,
    show_chat,
    show_documents,
    wait_job,
)
from tests.servers import api_server

pytestmark = [pytest.mark.api, pytest.mark.slow]

# A long document whose one fact sits deep inside, under a Markdown heading.
LIGHTHOUSE = "# Lighthouse\n\n{before}## Keeper's log\n\n{fact}\n\n{after}".format(
    before="".join(f"Storm note {i}: the swell rose over the breakwater.\n\n" for i in range(80)),
    fact="The lighthouse keeper writes the tide height in the logbook at noon.",
    after="".join(f"Storm note {i}: gulls sheltered on the quay.\n\n" for i in range(80, 160)),
)


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
    (docs / "lighthouse.md").write_text(LIGHTHOUSE, encoding="utf-8")
    from ingest.reindex import reindex
    from rag_service.settings import Settings

    settings = Settings(_env_file=None, data_dir=indexed_docs["RAG_DATA_DIR"], corpus_dir=docs)  # type: ignore[call-arg]
    reindex(settings)
    with api_server(root, indexed_docs) as base:
        yield base
    (docs / "hostile.md").unlink()
    (docs / "lighthouse.md").unlink()


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
    assert page.locator(".turn .passages li").count() >= 1
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
    refused = page.locator(".turn").first
    refused.locator(".refusal:not([hidden])").wait_for()
    refusal = refused.locator(".refusal").text_content() or ""
    assert "do not contain the answer" in refusal
    assert page.locator("body").inner_text().count(refusal) == 1  # said once, not also below
    assert (refused.locator(".answer").text_content() or "") == ""
    assert page.locator("button.cite").count() == 0
    page.locator("#ask:not([disabled])").wait_for()
    # A follow-up in the same thread; the hostile passage still renders as text.
    hostile = ask(page, "What does the hostile beacon do every night?")
    page.locator("#status", has_text="Answered").wait_for()
    passages = hostile.locator(".passages").text_content() or ""
    assert "<script>" in passages or "<img" in passages  # shown as text, not parsed
    assert page.locator(".passages img, .answer img, .passages script").count() == 0
    assert page.title() != "pwned"
    page.close()


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
    accept_dialogs(page)
    page.goto(url)
    # The selector is filled from /v1/collections after the page loads.
    page.locator("#collection option[value='default']").wait_for(state="attached")
    assert page.locator("#collection").input_value() == "default"
    assert page.locator("#delete-collection").is_disabled()
    create_collection(page, "notes")
    # The Documents view fetches the new collection's list when it opens: wait for it.
    page.locator("#docs", has_text="No documents yet").wait_for()
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
    status = wait_job(page, "Done")
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
    assert "1 added" in wait_job(page, "Done")
    assert "3 sources" in (page.locator("#index").text_content() or "")

    # The choice survives a reload (sessionStorage), so does the view (#documents), and the
    # question box asks in the chosen collection.
    page.reload()
    page.locator("#docs tr[data-path='zebra.md']").wait_for()
    assert page.locator("#collection").input_value() == "notes"
    show_chat(page)
    page.get_by_label("Question").fill("When is the zebra moon festival held?")
    page.get_by_role("button", name="Ask").click()
    cite = page.locator("button.cite").first
    cite.wait_for()
    quote = cite.get_attribute("data-quote")
    cite.click()
    assert page.locator("dialog[open] mark").text_content() == quote
    assert (page.locator("#doc-meta").text_content() or "").startswith("zebra.md")
    page.keyboard.press("Escape")

    show_documents(page)
    page.get_by_role("button", name="Delete zebra.md").click()
    page.locator("#docs tr[data-path='zebra.md']").wait_for(state="detached")
    assert "1 deleted" in wait_job(page, "Done")
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
    accept_dialogs(page)
    page.goto(url)
    create_collection(page, "scratch")
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
    wait_job(page, "Done")
    page.locator("#docs .path", has_text="<img").wait_for()
    assert page.locator("#docs img, #manage-status img, #upload-status img").count() == 0
    assert page.title() != "1"

    page.get_by_label("New collection").fill(".hidden")
    page.get_by_role("button", name="Create").click()
    page.locator("#manage-error:not([hidden])").wait_for()  # the server judges the name
    error = page.locator("#manage-error").text_content() or ""
    assert "not a valid" in error and "cannot name a collection" in error

    page.get_by_role("button", name="Delete collection").click()
    page.locator("#manage-status", has_text="Deleted").wait_for()
    # The selector is refilled from /v1/collections after the deletion.
    page.locator("#collection option[value=scratch]").wait_for(state="detached")
    assert page.locator("#collection").input_value() == "default"
    assert page.locator("#collection option[value=scratch]").count() == 0
    page.close()


def test_a_collection_named_in_chinese_from_the_page(browser: Any, url: str) -> None:
    page = browser.new_page(locale="en-US")
    accept_dialogs(page)
    page.goto(url)
    create_collection(page, "员工手册")
    page.get_by_label("Files to upload").set_input_files(
        [{"name": "年假.md", "mimeType": "text/markdown", "buffer": "# 年假\n\n十五天。".encode()}]
    )
    assert "1 added" in wait_job(page, "Done")
    page.locator("#docs tr[data-path='年假.md']").wait_for()
    page.get_by_role("button", name="Delete collection").click()
    page.locator("#manage-status", has_text="Deleted").wait_for()
    page.locator("#collection option[value='员工手册']").wait_for(state="detached")
    page.close()


def test_documents_panel_speaks_chinese(browser: Any, url: str) -> None:
    page = browser.new_page(locale="zh-CN")
    page.goto(url)
    page.get_by_role("button", name="文档").click()
    page.locator("#docs tr[data-path]").first.wait_for()  # the default collection's documents
    assert page.get_by_label("要上传的文件").count() == 1
    assert page.get_by_label("新建文档集").count() == 1
    assert page.locator("#docs-table th").first.text_content() == "文档"
    page.close()


@pytest.mark.parametrize(
    "viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}]
)
def test_headings_render_and_the_citation_dialog_keeps_title_and_close_in_view(
    browser: Any, url: str, viewport: dict[str, int]
) -> None:
    page = browser.new_page(locale="en-US", viewport=viewport)
    page.goto(url)
    page.get_by_label("Question").fill("When does the lighthouse keeper write the tide height?")
    page.get_by_role("button", name="Ask").click()
    cite = page.locator("button.cite").first
    cite.wait_for()
    # The passage's Markdown heading is a heading, not "## Keeper's log" as text.
    passages = page.locator(".turn .passages")
    passages.locator("h4", has_text="Keeper's log").first.wait_for(state="attached")
    assert "##" not in (passages.text_content() or "")
    cite.click()
    page.locator("dialog[open] mark").wait_for()
    _assert_in_view(page, "#doc-title")
    _assert_in_view(page, "dialog[open] .doc-head button")
    page.locator("#doc-text").evaluate("(text) => { text.scrollTop = text.scrollHeight; }")
    _assert_in_view(page, "#doc-title")
    page.get_by_role("button", name="Close").click()
    page.locator("dialog[open]").wait_for(state="detached")
    page.close()


def _assert_in_view(page: Any, selector: str) -> None:
    """The element is inside the viewport and nothing covers its middle."""
    seen = page.locator(selector).evaluate(
        """(node) => {
          const box = node.getBoundingClientRect();
          const x = box.left + box.width / 2, y = box.top + box.height / 2;
          const top = document.elementFromPoint(x, y);
          return { inside: box.top >= 0 && box.bottom <= innerHeight && box.left >= 0
            && box.right <= innerWidth, visible: node === top || node.contains(top) };
        }"""
    )
    assert seen == {"inside": True, "visible": True}, (selector, seen)


def _posts(page: Any) -> list[str]:
    """The URLs of the state-changing requests the page sends from now on."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method != "GET" else None)
    return sent


def test_uploads_are_offered_only_where_they_land(
    browser: Any, url: str, indexed_docs: dict[str, str]
) -> None:
    corpus = Path(indexed_docs["RAG_CORPUS_DIR"])
    before = sorted(p.name for p in corpus.rglob("*"))
    page = browser.new_page(locale="en-US")
    accept_dialogs(page)
    sent = _posts(page)
    page.goto(url)
    show_documents(page)
    # `default` mirrors a folder of the server: no chooser, no drop, no delete, and why.
    page.locator("#upload-off", has_text="mirrors a folder of the server").wait_for()
    page.locator("#docs tr[data-path]").first.wait_for()
    assert not page.locator("#files").is_visible()
    assert page.locator("#docs button").count() == 0
    page.evaluate(DROP, ["dropped.md", "# Dropped\n\nA dropped file.\n"])
    assert sent == [] and (page.locator("#upload-status").text_content() or "") == ""

    create_collection(page, "target")
    page.locator("#files").wait_for()
    assert page.locator("#upload-off").is_hidden()
    # A create that fails leaves the selector where it was and sends nothing there.
    page.get_by_label("New collection").fill("x" * 300)
    page.get_by_role("button", name="Create").click()
    page.locator("#manage-error:not([hidden])").wait_for()
    assert "request id" in (page.locator("#manage-error").text_content() or "")
    assert page.locator("#collection").input_value() == "target"
    page.locator("#upload-off", has_text="was not created").wait_for()
    assert not page.locator("#files").is_visible()
    page.evaluate(DROP, ["dropped.md", "# Dropped\n\nA dropped file.\n"])
    assert [u for u in sent if "/documents" in u] == []
    # Uploading into the chosen collection is one explicit click away.
    page.get_by_role("button", name="Upload into “target”").click()
    page.evaluate(DROP, ["kept.md", "# Kept\n\nA file meant for target.\n"])
    page.locator("#docs tr[data-path='kept.md']").wait_for()
    wait_job(page, "1 added")
    assert page.locator("#docs button", has_text="Delete").count() == 1
    assert sorted(p.name for p in corpus.rglob("*")) == before
    page.get_by_role("button", name="Delete collection").click()
    page.locator("#collection option[value=target]").wait_for(state="detached")
    page.close()


# Holds the answer to the first GET whose URL matches `pattern` until `window.release()`;
# `window.answered` counts up once the page has read that answer and acted on it.
HOLD = """(pattern) => {
  const fetch_ = window.fetch.bind(window);
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  Object.assign(window, { release, held: 0, answered: 0 });
  window.fetch = async (resource, init) => {
    const response = await fetch_(resource, init);
    const get = (init?.method || "GET") === "GET";
    if (!get || window.held || !new RegExp(pattern).test(String(resource))) return response;
    window.held = 1;
    await released;
    const json = response.json.bind(response);
    response.json = async () => {
      const body = await json();
      setTimeout(() => { window.answered += 1; });
      return body;
    };
    return response;
  };
}"""


def _hold(page: Any, pattern: str) -> None:
    page.add_init_script(f"({HOLD})({json.dumps(pattern)})")


def _release(page: Any) -> None:
    page.evaluate("window.release()")
    page.wait_for_function("() => window.answered === 1")


def test_a_late_document_listing_leaves_the_upload_error(browser: Any, url: str) -> None:
    """On a busy machine the listing a create starts can end after an upload has failed; it
    erased the upload's error (the test above then waited 30 s for `#upload-error`)."""
    page = browser.new_page(locale="en-US")
    accept_dialogs(page)
    _hold(page, "/v1/collections/late-docs/documents$")
    page.goto(url)
    create_collection(page, "late-docs")
    page.wait_for_function("() => window.held === 1")
    page.get_by_label("Files to upload").set_input_files(
        [{"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}]
    )
    page.locator("#upload-error:not([hidden])").wait_for()
    _release(page)
    page.locator("#docs", has_text="No documents yet").wait_for()
    assert "not a supported format" in (page.locator("#upload-error").text_content() or "")
    assert page.locator("#upload-error").is_visible()
    page.get_by_role("button", name="Delete collection").click()
    page.locator("#collection option[value=late-docs]").wait_for(state="detached")
    page.close()


def test_a_late_collection_listing_keeps_the_new_collection(browser: Any, url: str) -> None:
    """The page's first listing, fetched before a create, can arrive after it: it lacks the new
    collection, and the page fell back to `default`."""
    page = browser.new_page(locale="en-US")
    accept_dialogs(page)
    _hold(page, "/v1/collections$")
    page.goto(url)
    page.wait_for_function("() => window.held === 1")
    create_collection(page, "late-list")
    _release(page)
    assert page.locator("#collection").input_value() == "late-list"
    assert page.locator("#upload-off").is_hidden()
    page.locator("#files").wait_for()
    page.get_by_role("button", name="Delete collection").click()
    page.locator("#collection option[value=late-list]").wait_for(state="detached")
    page.close()


def test_a_remembered_collection_that_is_gone_is_said_and_nothing_uploads_elsewhere(
    browser: Any, url: str
) -> None:
    page = browser.new_page(locale="en-US")
    page.add_init_script("sessionStorage.setItem('rag-collection', 'vanished')")
    page.goto(url)
    show_documents(page)
    page.locator("#upload-off", has_text="“vanished” no longer exists").wait_for()
    assert page.locator("#collection").input_value() == "default"
    assert not page.locator("#files").is_visible()
    page.close()

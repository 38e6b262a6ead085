"""The quick start as a user runs it, with nothing configured: a copy of this checkout (what
`git clone` gives, with the uncommitted changes) and no settings at all (no `.env`, no RAG_*
variable but the suite's embedder), so the data folder is the relative default `data`; then
`rag reindex` and `rag serve` from its root, and the page in Chromium: create a collection named
in Chinese, upload a file, wait for its job, ask what only that file says, open the citation,
delete the document and the collection. Nothing lands in the copy's `corpus/`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.browser import accept_dialogs, create_collection, show_chat, show_documents, wait_job
from tests.servers import api_server, rag_reindex

pytestmark = [pytest.mark.api, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
COLLECTION = "员工手册"
LEAVE = (
    "# 年假\n\nEvery employee of Quokka Travel gets twenty-seven days of paid annual leave "
    "each calendar year.\n"
)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The files git tracks or would track here (not .venv, data/, .env), committed in a new
    repository: a fresh clone of what is checked out."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    target = tmp_path / "rag-service"
    listed = _git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the work tree is still listed
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    _git(target, "init", "-q")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "clone")
    return target


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RAG_* variable reaches the servers but the embedder the suite runs on (conftest)."""
    for name in list(os.environ):
        if name.startswith("RAG_") and name != "RAG_EMBEDDER__BACKEND":
            monkeypatch.delenv(name)


def test_a_clone_with_no_settings_works_end_to_end_in_the_page(
    browser: Any, clone: Path, no_settings: None, tmp_path: Path
) -> None:
    rag_reindex({}, clone)
    with api_server(clone, {}, log=tmp_path / "serve.log") as url:
        page = browser.new_page(locale="en-US")
        accept_dialogs(page)
        page.goto(url)
        show_documents(page)
        # `default` mirrors the clone's corpus/: the page offers no upload into it.
        page.locator("#upload-off", has_text="mirrors a folder of the server").wait_for()
        assert not page.locator("#files").is_visible()

        create_collection(page, COLLECTION)
        page.locator("#docs", has_text="No documents yet").wait_for()
        page.get_by_label("Files to upload").set_input_files(
            [{"name": "年假.md", "mimeType": "text/markdown", "buffer": LEAVE.encode()}]
        )
        page.locator("#docs tr[data-path='年假.md']").wait_for()
        assert "1 added" in wait_job(page, "Done")

        show_chat(page)
        page.get_by_label("Question").fill("How many days of paid annual leave do employees get?")
        page.get_by_role("button", name="Ask").click()
        cite = page.locator("button.cite").first
        cite.wait_for()
        quote = cite.get_attribute("data-quote")
        assert "twenty-seven days" in (page.locator(".turn .answer").text_content() or "")
        cite.click()
        assert page.locator("dialog[open] mark").text_content() == quote
        assert (page.locator("#doc-meta").text_content() or "").startswith("年假.md")
        page.get_by_role("button", name="Close").click()
        page.locator("dialog[open]").wait_for(state="detached")

        show_documents(page)
        page.get_by_role("button", name="Delete 年假.md").click()
        page.locator("#docs tr[data-path='年假.md']").wait_for(state="detached")
        assert "1 deleted" in wait_job(page, "Done")
        page.get_by_role("button", name="Delete collection").click()
        page.locator(f"#collection option[value='{COLLECTION}']").wait_for(state="detached")
        assert page.locator("#collection").input_value() == "default"
        page.close()
    # The index went to the relative default folder, ignored by git; corpus/ is untouched.
    assert (clone / "data" / "CURRENT.json").is_file()
    assert _git(clone, "status", "--porcelain", "--untracked-files=all") == ""

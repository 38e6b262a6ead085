"""The page's browser tests: Debian's Chromium driven by Playwright, and the steps on the page
that several tests take."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("RAG_TEST_CHROMIUM", "/usr/bin/chromium"))


def launch() -> Iterator[Any]:
    """A headless Chromium for a module's tests; skipped, with the reason, where none is
    installed (`make install-dev` installs it where it can)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make install-dev)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def accept_dialogs(page: Any) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


def wait_job(page: Any, expect: str) -> str:
    """Waits until the page shows its document job finished; returns the status text."""
    page.locator("#upload-status[data-state=done], #upload-status[data-state=failed]").wait_for()
    status = page.locator("#upload-status").text_content() or ""
    assert expect in status, status
    return status


def show_documents(page: Any) -> None:
    """Opens the page's documents view (collections, uploads, the document list)."""
    if page.locator("#docs-view").is_hidden():
        page.locator("#view-docs").click()
    page.locator("#docs-view").wait_for()


def show_chat(page: Any) -> None:
    """Goes back from the documents view to the chat."""
    if page.locator("#chat-view").is_hidden():
        page.locator("#view-docs").click()
    page.locator("#chat-view").wait_for()


def ask(page: Any, question: str, label: str = "Question") -> Any:
    """Asks in the current thread, from the keyboard, and waits for the answer (or its error);
    returns the new turn."""
    turns = page.locator(".turn").count()
    page.get_by_label(label).fill(question)
    page.get_by_label(label).press("Enter")  # the turn is on screen and Ask disabled at once
    page.locator("#ask:not([disabled])").wait_for()
    turn = page.locator(".turn").nth(turns)
    assert turn.locator(".error").is_hidden(), turn.locator(".error").text_content()
    return turn


def create_collection(page: Any, name: str) -> None:
    show_documents(page)
    page.get_by_label("New collection").fill(name)
    page.get_by_role("button", name="Create").click()
    error = page.locator("#manage-error:not([hidden])")
    page.locator("#manage-status", has_text=name).or_(error).wait_for()
    assert error.count() == 0, error.text_content()
    page.wait_for_function("(n) => document.getElementById('collection').value === n", arg=name)

"""The README's screenshots of the page (docs/page.png at 1280×900, docs/page-phone.png at
390×844), taken in headless Chromium on a server over the shipped corpus:

    rag serve &                          # on the shipped corpus (make run)
    .venv/bin/python bench/page_screenshots.py http://127.0.0.1:8000

Each shows a second thread from the top: an example question clicked, then a follow-up; the first
thread (two turns) is in the list.
"""

from __future__ import annotations

import argparse

from _common import REPO
from playwright.sync_api import Page, sync_playwright

from tests.servers import CHROMIUM_ARGS

SIZES = {"page.png": (1280, 900), "page-phone.png": (390, 844)}
FIRST = ["What is DPO?", "Who introduced it?"]
FOLLOW_UP = "Who proposed it?"  # after the LoRA example


def ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.locator("#ask:not([disabled])").wait_for()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--out", default=str(REPO / "docs"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        for name, (width, height) in SIZES.items():
            page = browser.new_page(locale="en-US", viewport={"width": width, "height": height})
            page.goto(args.url)
            for question in FIRST:
                ask(page, question)
            page.click("#new-thread")
            page.locator("#examples button").first.click()
            page.locator("#ask:not([disabled])").wait_for()
            ask(page, FOLLOW_UP)
            page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
            page.screenshot(path=f"{args.out}/{name}")
            print(f"{args.out}/{name}")
            page.close()
        browser.close()


if __name__ == "__main__":
    main()

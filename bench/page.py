"""The page's first-load bytes and its time to the first answer token, in headless Chromium.

    rag serve &                          # on the shipped corpus (make run)
    .venv/bin/python bench/page.py http://127.0.0.1:8000 --questions 10 [--one-thread]

First load: every response body the browser fetches to show / (the page, its script and style,
and /v1/collections). Time to first token: from pressing Enter to the first answer text on
screen (retrieval, the passages event, then the first delta), over the corpus' first questions,
each in a new thread; with --one-thread all in one thread, each sent with the ones before as
history (up to 20 messages).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import REPO
from playwright.sync_api import Response, sync_playwright

from tests.servers import CHROMIUM_ARGS

QUESTIONS = REPO / "corpus" / "QUESTIONS.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--one-thread", action="store_true")
    args = parser.parse_args()
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines][: args.questions]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        sizes: dict[str, int] = {}

        def record(response: Response) -> None:
            sizes[response.url] = len(response.body())

        page.on("response", record)
        page.goto(args.url, wait_until="networkidle")
        page.remove_listener("response", record)
        print(f"first load: {sum(sizes.values())} bytes in {len(sizes)} responses")
        for url, size in sizes.items():
            print(f"  {size:6d}  {url}")
        waits = []
        for question in questions:
            if not args.one_thread:
                page.click("#new-thread")
            page.fill("#question", question)
            started = time.perf_counter()
            page.press("#question", "Enter")
            # The page's CSP allows no eval, so no wait_for_function: a selector. A refusal
            # (a question the history drew off the documents) is shown whole, at the end.
            page.locator(
                ".turn:last-child :is(.answer > *, .refusal:not([hidden]))"
            ).first.wait_for()
            waits.append((time.perf_counter() - started) * 1000)
            page.locator("#ask:not([disabled])").wait_for()
        print(
            f"time to first answer token over {len(waits)} questions: median "
            f"{statistics.median(waits):.0f} ms, max {max(waits):.0f} ms"
        )
        browser.close()


if __name__ == "__main__":
    main()

"""Open WebUI itself in front of the service: a two-turn conversation in its page, and how many
of the calls it made reached retrieval.

    python3.11 -m venv /work/owui-venv && /work/owui-venv/bin/pip install open-webui  # ~7 GB
    .venv/bin/python bench/open_webui_chat.py --open-webui /work/owui-venv/bin/open-webui
    .venv/bin/python bench/open_webui_chat.py --service-repo /path/to/older/checkout  # "before"

It indexes the shipped corpus into a temporary folder, starts ``rag serve`` (from
``--service-repo``, this checkout by default) and, offline on loopback, Open WebUI pointed at it
through a recording proxy; Debian's Chromium then asks the conversation in Open WebUI's own page,
the way a user does, so that Open WebUI sends exactly the background tasks its page asks for
(title, tags, follow-up suggestions). It prints the calls that reached /v1/chat/completions,
those that ran a search (``rag_answers_total``) and those answered as tasks
(``rag_chat_tasks_total``), checks that the second turn was answered from the right note with
its sources shown, and with ``--capture DIR`` writes each request body Open WebUI sent (the
fixtures of tests/unit/test_chat_tasks.py come from there).

Open WebUI is kept out of the project's environment and of ``make test``: it is large, pins its
own versions, and needs ~1 minute to start on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
from _common import REPO
from playwright.sync_api import Page, sync_playwright

from tests.servers import CHROMIUM_ARGS, free_port, http_server, rag_reindex, running

# corpus/CONVERSATIONS.jsonl's first conversation in each language: the follow-up only makes
# sense with the first turn; the answer to it and the note it must be cited from.
CONVERSATIONS = (
    (("What is DPO?", "Who introduced it?"), "Rafailov", "RLHF: Reward Models"),
    (("DPO 是什么？", "它是谁提出的？"), "Rafailov", "RLHF"),
)
# Open WebUI's switches for its background tasks (Admin Panel > Settings > Interface; these
# variables set them on a first start, later the saved settings win).
TASKS_OFF = {
    "ENABLE_TITLE_GENERATION": "false",
    "ENABLE_TAGS_GENERATION": "false",
    "ENABLE_FOLLOW_UP_GENERATION": "false",
    "ENABLE_AUTOCOMPLETE_GENERATION": "false",
    "ENABLE_SEARCH_QUERY_GENERATION": "false",
    "ENABLE_RETRIEVAL_QUERY_GENERATION": "false",
}


class Recorder:
    """The chat completions Open WebUI sent: their bodies, in order, and the seconds each took
    to its last byte."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.seconds: list[float] = []
        self.lock = threading.Lock()


@contextmanager
def recording_proxy(upstream: str, recorder: Recorder) -> Iterator[str]:
    """A pass-through HTTP proxy to ``upstream`` that records chat-completion request bodies;
    responses (streams included) are relayed as they arrive."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _relay(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            started = time.perf_counter()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
            with httpx.stream(
                method, upstream + self.path, content=body, headers=headers, timeout=300
            ) as reply:
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in reply.iter_raw():
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            if method == "POST" and self.path.endswith("/chat/completions"):
                with recorder.lock:
                    recorder.bodies.append(json.loads(body))
                    recorder.seconds.append(time.perf_counter() - started)

        def do_GET(self) -> None:
            self._relay("GET")

        def do_POST(self) -> None:
            self._relay("POST")

    with http_server(Handler) as origin:
        yield origin


def metric(text: str, name: str) -> dict[str, float]:
    """Every sample of one counter, by its label set."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str
    chips: list[str]  # the citation chips under the answer (Open WebUI's "View source: ...")


def ask(page: Page, question: str, turn: int) -> Turn:
    """Types ``question`` in Open WebUI's composer, sends it, and waits until the ``turn``-th
    answer is done: shown, unchanged for 3 s, with its Regenerate button."""
    page.locator("#chat-input").click()
    page.keyboard.type(question)
    page.keyboard.press("Enter")
    answer = page.locator(".chat-assistant").nth(turn - 1)
    answer.wait_for(timeout=180_000)
    text, deadline = "", time.monotonic() + 180
    while True:
        page.wait_for_timeout(3000)
        now = answer.inner_text()
        if now and now == text and page.locator("button[aria-label='Regenerate']").count():
            break
        assert time.monotonic() < deadline, f"turn {turn} did not finish: {now!r}"
        text = now
    chips = answer.locator("button[aria-label^='View source']").all()
    return Turn(question, text, [c.get_attribute("aria-label") or "" for c in chips])


def wait_quiet(recorder: Recorder, seconds: float = 8, limit: float = 120) -> None:
    """Until no call has reached the service for ``seconds``: Open WebUI's tasks run after the
    answer, in the background."""
    deadline = time.monotonic() + limit
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with recorder.lock:
            now = len(recorder.bodies)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open-webui", default="/work/owui-venv/bin/open-webui")
    parser.add_argument("--service-repo", type=Path, default=REPO)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--capture", type=Path, help="write each chat-completion body here")
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument(
        "--tasks-off", action="store_true", help="start Open WebUI with its tasks switched off"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="owui-bench-"))
    service_env = {
        "PYTHONPATH": str(args.service_repo.resolve()),
        "RAG_DATA_DIR": str(root / "data"),
        "RAG_CORPUS_DIR": str(REPO / "corpus"),
    }
    rag_reindex(service_env, root)
    port = free_port()
    service = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
    recorder = Recorder()
    with (
        running(serve, f"{service}/healthz", root, service_env),
        recording_proxy(service, recorder) as proxy,
    ):
        owui_port = free_port()
        owui = f"http://127.0.0.1:{owui_port}"
        owui_env = {
            "OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "ENABLE_OLLAMA_API": "false",
            "WEBUI_AUTH": "false",
            "ENABLE_VERSION_UPDATE_CHECK": "false",
            "OPENAI_API_BASE_URL": f"{proxy}/v1",
            "OPENAI_API_KEY": "unused",
            "DEFAULT_MODELS": "rag",
            "DATA_DIR": str(root / "open-webui"),
            "PYTHONPATH": "",  # Open WebUI's own venv only
            **(TASKS_OFF if args.tasks_off else {}),
        }
        argv = [args.open_webui, "serve", "--host", "127.0.0.1", "--port", str(owui_port)]
        with running(argv, f"{owui}/health", root, owui_env, wait_s=300):
            turns = converse(owui, args)
            wait_quiet(recorder)
        scraped = httpx.get(f"{service}/metrics").text
    report(recorder, scraped, turns, args.capture)
    shutil.rmtree(root, ignore_errors=True)


def converse(owui: str, args: argparse.Namespace) -> list[Turn]:
    """Each conversation in a new chat of Open WebUI's page, as a user holds it."""
    turns = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            for questions, _, _ in CONVERSATIONS:
                page.goto(owui, wait_until="load")  # a new chat
                page.locator("#chat-input").wait_for(timeout=120_000)
                whats_new = page.get_by_role("button", name="Okay, Let's Go!")
                if whats_new.count():  # the first visit's changelog
                    whats_new.click()
                turns += [ask(page, q, n) for n, q in enumerate(questions, 1)]
        finally:  # the last conversation as it ended, or where it stopped
            if args.screenshot:
                page.screenshot(path=str(args.screenshot), full_page=True)
        page.wait_for_timeout(5000)  # the last titles arrive after the answers
        page.goto(owui, wait_until="load")
        page.locator("#chat-input").wait_for(timeout=120_000)
        titles = page.locator("a[href^='/c/']").all_inner_texts()
        print(f"chat titles in Open WebUI's sidebar: {[t.split(chr(10))[0] for t in titles]}")
        browser.close()
    return turns


def report(recorder: Recorder, scraped: str, turns: list[Turn], capture: Path | None) -> None:
    calls = metric(scraped, "rag_http_requests_total")
    chat_calls = sum(v for k, v in calls.items() if 'route="/v1/chat/completions"' in k)
    searched = sum(metric(scraped, "rag_answers_total").values())
    tasks = metric(scraped, "rag_chat_tasks_total")
    for turn in turns:
        print(f"--- {turn.question}\n{turn.answer.strip()[:300]}\n    chips: {turn.chips}")
    for n, (_, expect, note) in enumerate(CONVERSATIONS):
        second = turns[2 * n + 1]
        right = expect in second.answer and any(note in chip for chip in second.chips)
        print(f"follow-up {second.question!r} answered with {expect!r} from {note!r}: {right}")
    print(f"chat completions Open WebUI sent: {len(recorder.bodies)} (service: {chat_calls:.0f})")
    print(f"  ran a search (rag_answers_total): {searched:.0f}")
    print(f"  answered as tasks (rag_chat_tasks_total): {sum(tasks.values()):.0f} {tasks}")
    unstreamed = [
        s for b, s in zip(recorder.bodies, recorder.seconds, strict=True) if not b.get("stream")
    ]
    print(f"  not streamed (Open WebUI's tasks): {len(unstreamed)}, {sum(unstreamed):.1f} s")
    for body, seconds in zip(recorder.bodies, recorder.seconds, strict=True):
        messages = body.get("messages") or []
        assert isinstance(messages, list)
        last = " ".join(str(messages[-1].get("content", "")).split())[:60] if messages else ""
        print(f"  {seconds:5.2f} s stream={body.get('stream')!s:5} n={len(messages)} {last!r}")
    if capture is not None:
        capture.mkdir(parents=True, exist_ok=True)
        for n, body in enumerate(recorder.bodies, 1):
            path = capture / f"{n:02d}.json"
            path.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

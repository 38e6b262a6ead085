"""A tiny OpenAI-compatible chat server that misbehaves on request, for the failure tests.

    python -m tests.llm_stub --port 8099

``POST /_mode`` with ``{"mode": ...}`` picks the behaviour of ``/v1/chat/completions``:
ok (an answer whose [1] no passage supports), grounded (document 1's first sentence, cited
[1]), slow (sleeps before answering), garbage (HTML with status 200), shapeless (JSON without
choices), error (500), flaky (503 twice, then ok), midstream (a stream cut before [DONE]),
slowstream (one delta, then silence), trickle (a delta every 0.1 s for 60 s, each stream's
fate recorded), unauthorized (401), leaky (500 with a body that echoes
the Authorization header in several forms and the whole request, as careless proxies do). ``GET /v1/models`` answers 500 in
mode error and 401 in mode unauthorized, 200 otherwise. ``GET /_requests`` counts completion requests since the
last mode change, and the Authorization header of the last one. ``GET /_streams`` lists the
trickle streams since the last mode change: seconds each ran, and whether the client hung up.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import quote

ANSWER = "The stub answers from the documents [1]."
_FIRST_DOCUMENT = re.compile(r'<document n="1"[^>]*>\n(.*?)\n</document>', re.S)
SLEEP_S = 30
TRICKLE_S = 60
TRICKLE_STEP_S = 0.1


class _State:
    lock = threading.Lock()
    mode = "ok"
    requests = 0
    authorization = ""
    streams: ClassVar[list[dict[str, Any]]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode())

    def do_GET(self) -> None:
        if self.path == "/_requests":
            self._json(200, {"requests": _State.requests, "authorization": _State.authorization})
        elif self.path == "/_streams":
            with _State.lock:
                self._json(200, {"streams": list(_State.streams)})
        elif self.path == "/v1/models":
            status = {"error": 500, "unauthorized": 401}.get(_State.mode, 200)
            self._json(status, {"data": [{"id": "stub"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/_mode":
            with _State.lock:
                _State.mode, _State.requests, _State.streams = body["mode"], 0, []
            self._json(200, {"mode": _State.mode})
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": "not found"})
            return
        with _State.lock:
            _State.requests += 1
            _State.authorization = self.headers.get("Authorization", "")
            mode, count = _State.mode, _State.requests
        if mode == "slow":
            time.sleep(SLEEP_S)
        if mode == "unauthorized":
            self._json(401, {"error": {"message": "invalid api key"}})
        elif mode == "leaky":
            self._json(
                500, {"error": _echo(self.headers.get("Authorization", ""), self.headers, body)}
            )
        elif mode == "garbage":
            self._send(200, b"<html>upstream proxy error</html>", "text/html")
        elif mode == "shapeless":
            self._json(200, {"object": "chat.completion", "result": "no choices here"})
        elif mode == "error" or (mode == "flaky" and count <= 2):
            self._json(500 if mode == "error" else 503, {"error": {"message": "overloaded"}})
        elif body.get("stream"):
            self._stream(mode, _answer(mode, body))
        else:
            message = {"role": "assistant", "content": _answer(mode, body)}
            self._json(
                200,
                {
                    "object": "chat.completion",
                    "model": "stub",
                    "choices": [{"index": 0, "message": message}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109},
                },
            )

    def _trickle(self) -> None:
        """Deltas until TRICKLE_S or until the reader goes away, whichever comes first."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        record: dict[str, Any] = {"ran_s": 0.0, "closed_by_client": False, "finished": False}
        with _State.lock:
            _State.streams.append(record)
        started = time.monotonic()
        try:
            while time.monotonic() - started < TRICKLE_S:
                delta = {"choices": [{"index": 0, "delta": {"content": "word "}}]}
                self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                self.wfile.flush()
                record["ran_s"] = round(time.monotonic() - started, 2)
                time.sleep(TRICKLE_STEP_S)
            self.wfile.write(b"data: [DONE]\n\n")
            record["finished"] = True
        except (BrokenPipeError, ConnectionResetError):
            record["closed_by_client"] = True
        record["ran_s"] = round(time.monotonic() - started, 2)
        self.close_connection = True

    def _stream(self, mode: str, answer: str) -> None:
        if mode == "trickle":
            self._trickle()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = answer.split(" ")
        for i, word in enumerate(words):
            delta = {
                "choices": [{"index": 0, "delta": {"content": word + " " * (i < len(words) - 1)}}]
            }
            self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
            self.wfile.flush()
            if mode == "slowstream":
                time.sleep(SLEEP_S)
            if mode == "midstream" and i == 1:
                self.close_connection = True
                return
        usage = {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 9}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        self.close_connection = True


def _answer(mode: str, body: dict[str, Any]) -> str:
    """ANSWER, whose [1] no passage supports; in mode grounded, the first sentence of document 1
    in the prompt's last message, cited: an answer whose citation stands."""
    if mode != "grounded":
        return ANSWER
    found = _FIRST_DOCUMENT.search(str(body["messages"][-1]["content"]))
    lines = found.group(1).splitlines() if found else []
    prose = [line for line in lines if line.strip() and not line.startswith("#")]
    sentence = prose[0].split(". ")[0].rstrip(".") if prose else "Nothing"
    return f"{sentence}. [1]"


def _echo(authorization: str, headers: Any, body: object) -> dict[str, object]:
    """What a careless proxy puts in an error: the credential without its scheme, a Basic
    credential decoded and as URL user info (percent-encoded), every header, the request."""
    scheme, _, token = authorization.partition(" ")
    pair = base64.b64decode(token).decode() if scheme.lower() == "basic" else ""
    user, _, password = pair.partition(":")
    return {
        "credential": token,
        "user": pair,
        "upstream": f"http://{quote(user, safe='')}:{quote(password, safe='')}@10.0.0.1/v1",
        "userinfo": f"{quote(user, safe='')}:{quote(password, safe='')}",
        "message": f"bad request, Authorization: {authorization}",
        "headers": "".join(f"{name}: {value}\n" for name, value in headers.items()),
        "request": body,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()

"""Any OpenAI-compatible chat-completions endpoint: OpenAI, vLLM, Ollama's /v1, llama.cpp's
server, LM Studio. Plain httpx, so timeouts and retries are ours to decide:

- one deadline (``timeout_s``) covers the whole call, retries included, and every read;
- connection errors, 429 and 5xx are retried with exponential backoff while the deadline allows,
  but never after the first streamed byte (the caller has already seen the answer begin);
- every failure surfaces as ``UpstreamError`` (502) or ``UpstreamTimeout`` (504);
- what the endpoint sends back in a failure is never put in those errors (their messages reach
  callers, and a careless endpoint or proxy echoes our Authorization header and the prompt):
  they carry its size and digest, the log a scrubbed excerpt; URLs are shown without user info;
- credentials: ``RAG_LLM__API_KEY`` as Bearer, or the base URL's ``user:password@`` as Basic;
  both at once is a ConfigError (they would share the one Authorization header).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from rag_service.errors import ConfigError, UpstreamError, UpstreamTimeout
from rag_service.redact import Redactor, digest, redact_url
from rag_service.settings import LLMSettings
from rag_service.types import Completion, GenerationParams, Prompt, Usage

log = logging.getLogger(__name__)

BACKOFF_S = 0.5
CHECK_TIMEOUT_S = 3.0
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class OpenAICompatibleLLM:
    backend = "openai"

    def __init__(self, settings: LLMSettings) -> None:
        self.model = settings.model or "default"
        # User info moves out of the URL into Basic auth (what httpx makes of it anyway), so the
        # URL that httpx logs and errors show holds no password.
        parsed = httpx.URL(settings.base_url.rstrip("/"))
        key = settings.api_key.get_secret_value()
        if parsed.userinfo and key:
            # Basic for the URL's user and Bearer for the key both belong in the one
            # Authorization header: httpx would send the first and silently drop the key.
            raise ConfigError(
                "RAG_LLM__BASE_URL carries user:password@ and RAG_LLM__API_KEY is set, but only "
                "one credential fits the Authorization header: keep the key (sent as Bearer) or "
                "the URL's user info (sent as Basic), not both"
            )
        auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.userinfo else None
        self._base_url = redact_url(str(parsed))
        self._url = self._base_url + "/chat/completions"
        self._timeout_s = settings.timeout_s
        self._retries = settings.max_retries
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._redactor = Redactor.for_llm(settings)
        self._client = httpx.Client(headers=headers, auth=auth)

    def _body(self, prompt: Prompt, params: GenerationParams, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @contextmanager
    def _response(self, body: dict[str, Any], deadline: float) -> Iterator[httpx.Response]:
        """A 2xx response to ``body``, retried on transient failures until the deadline."""
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout(f"the LLM did not answer within {self._timeout_s:g} s")
            request = self._client.build_request(
                "POST", self._url, json=body, timeout=httpx.Timeout(left)
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(
                    f"the LLM did not answer within {self._timeout_s:g} s"
                ) from exc
            except httpx.TransportError as exc:
                delay = self._retry_delay(attempt, deadline)
                if delay is None:
                    raise UpstreamError(
                        f"cannot reach the LLM at {self._url}: {self._scrub(exc)}"
                    ) from exc
                time.sleep(delay)
                attempt += 1
                continue
            delay = self._retry_delay(attempt, deadline)
            if response.status_code in _RETRY_STATUS and delay is not None:
                response.close()  # give the connection back before waiting
                time.sleep(delay)
                attempt += 1
                continue
            try:
                if response.is_error:
                    raise self._relayed(
                        f"the LLM endpoint answered {response.status_code}", response.read()
                    )
                yield response
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(
                    f"the LLM did not finish within {self._timeout_s:g} s"
                ) from exc
            except httpx.TransportError as exc:
                raise UpstreamError(f"the LLM connection failed: {self._scrub(exc)}") from exc
            finally:
                response.close()
            return

    def _retry_delay(self, attempt: int, deadline: float) -> float | None:
        """How long to wait before retry ``attempt + 1``; None when no retry is left or the
        deadline leaves no time for one."""
        delay: float = BACKOFF_S * 2.0**attempt
        if attempt >= self._retries or time.monotonic() + delay >= deadline:
            return None
        return delay

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        deadline = time.monotonic() + self._timeout_s
        with self._response(self._body(prompt, params, stream=False), deadline) as response:
            response.read()
        try:
            payload = response.json()
            text = payload["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, LookupError, TypeError) as exc:
            raise self._relayed("the LLM sent a malformed response", response.content) from exc
        return Completion(text, _usage(payload.get("usage")))

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        deadline = time.monotonic() + self._timeout_s
        with self._response(self._body(prompt, params, stream=True), deadline) as response:
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise UpstreamTimeout(f"the LLM did not finish within {self._timeout_s:g} s")
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    yield _delta(data)
                except ValueError as exc:
                    raise self._relayed(
                        "the LLM sent a malformed stream event", data.encode()
                    ) from exc
        raise UpstreamError("the LLM stream ended without [DONE]")

    def check(self) -> None:
        """The endpoint answers and accepts the key: ``GET /models``, as every OpenAI-compatible
        server implements it, within a short timeout (a probe must not hang)."""
        url = self._base_url + "/models"
        try:
            response = self._client.get(url, timeout=min(self._timeout_s, CHECK_TIMEOUT_S))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach the LLM at {url}: {self._scrub(exc)}") from exc
        if response.status_code in (401, 403):
            raise UpstreamError(f"the LLM endpoint rejects the API key ({response.status_code})")
        if response.status_code >= 500:
            raise UpstreamError(f"the LLM endpoint answers {response.status_code}")

    def warm_up(self) -> None:
        """A remote model: nothing to load here."""

    def close(self) -> None:
        self._client.close()

    def _scrub(self, exc: Exception) -> str:
        # httpx's messages may hold the URL, user info included.
        return self._redactor.excerpt(str(exc) or type(exc).__name__)

    def _relayed(self, what: str, body: bytes) -> UpstreamError:
        """The error for a body the endpoint sent: its size and digest for the caller, so a
        report can be matched with the log, which gets a scrubbed excerpt."""
        fingerprint = f"{len(body)} bytes, sha256 {digest(body)}"
        excerpt = self._redactor.excerpt(body.decode("utf-8", "replace"))
        log.warning("%s (%s): %s", what, fingerprint, excerpt)
        return UpstreamError(f"{what} ({fingerprint}; excerpt in the server log)")


def _delta(data: str) -> Completion:
    """One stream event's text; ValueError if it is not a chat-completion chunk."""
    try:
        event = json.loads(data)
        choices = event.get("choices") or []
        text = (choices[0].get("delta") or {}).get("content") or "" if choices else ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise ValueError("not a chat-completion chunk") from exc
    return Completion(text, _usage(event.get("usage")))


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(int(raw["prompt_tokens"]), int(raw["completion_tokens"]))
    except (KeyError, TypeError, ValueError):
        return None

"""Any OpenAI-compatible chat-completions endpoint: OpenAI, vLLM, Ollama's /v1, llama.cpp's
server, LM Studio. Plain httpx, so timeouts and retries are ours to decide:

- one deadline (``timeout_s``) covers the whole call, retries included, and every read;
- connection errors, 429 and 5xx are retried with exponential backoff while the deadline allows,
  but never after the first streamed byte (the caller has already seen the answer begin);
- every failure surfaces as ``UpstreamError`` (502) or ``UpstreamTimeout`` (504).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from rag_service.errors import UpstreamError, UpstreamTimeout
from rag_service.settings import LLMSettings
from rag_service.types import Completion, GenerationParams, Prompt, Usage

BACKOFF_S = 0.5
CHECK_TIMEOUT_S = 3.0
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class OpenAICompatibleLLM:
    backend = "openai"

    def __init__(self, settings: LLMSettings) -> None:
        self.model = settings.model or "default"
        self._base_url = settings.base_url.rstrip("/")
        self._url = self._base_url + "/chat/completions"
        self._timeout_s = settings.timeout_s
        self._retries = settings.max_retries
        headers = {"Accept": "application/json"}
        if key := settings.api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(headers=headers)

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
                    raise UpstreamError(f"cannot reach the LLM at {self._url}: {exc}") from exc
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
                    response.read()
                    raise UpstreamError(
                        f"the LLM endpoint answered {response.status_code}: {response.text[:200]}"
                    )
                yield response
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(
                    f"the LLM did not finish within {self._timeout_s:g} s"
                ) from exc
            except httpx.TransportError as exc:
                raise UpstreamError(f"the LLM connection failed: {exc}") from exc
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
            raise UpstreamError(
                f"the LLM sent a malformed response: {response.text[:200]}"
            ) from exc
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
                yield _delta(data)
        raise UpstreamError("the LLM stream ended without [DONE]")

    def check(self) -> None:
        """The endpoint answers and accepts the key: ``GET /models``, as every OpenAI-compatible
        server implements it, within a short timeout (a probe must not hang)."""
        url = self._base_url + "/models"
        try:
            response = self._client.get(url, timeout=min(self._timeout_s, CHECK_TIMEOUT_S))
        except httpx.HTTPError as exc:
            raise UpstreamError(f"cannot reach the LLM at {url}: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise UpstreamError(f"the LLM endpoint rejects the API key ({response.status_code})")
        if response.status_code >= 500:
            raise UpstreamError(f"the LLM endpoint answers {response.status_code}")

    def warm_up(self) -> None:
        """A remote model: nothing to load here."""

    def close(self) -> None:
        self._client.close()


def _delta(data: str) -> Completion:
    try:
        event = json.loads(data)
        choices = event.get("choices") or []
        text = (choices[0].get("delta") or {}).get("content") or "" if choices else ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise UpstreamError(f"the LLM sent a malformed stream event: {data[:200]}") from exc
    return Completion(text, _usage(event.get("usage")))


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(int(raw["prompt_tokens"]), int(raw["completion_tokens"]))
    except (KeyError, TypeError, ValueError):
        return None

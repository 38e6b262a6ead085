"""A GGUF model run in-process by llama-cpp-python (the optional ``llamacpp`` extra)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from rag_service.errors import ConfigError, UpstreamError
from rag_service.settings import LLMSettings
from rag_service.types import Completion, GenerationParams, Prompt, Usage


class LlamaCppLLM:
    """Loads the model on first use (or ``warm_up``); one generation at a time, since a llama.cpp
    context is not safe to share between threads."""

    backend = "llamacpp"

    def __init__(self, settings: LLMSettings) -> None:
        if settings.model_path is None:
            raise ConfigError("the llamacpp backend needs RAG_LLM__MODEL_PATH (a .gguf file)")
        if not settings.model_path.is_file():
            raise ConfigError(f"RAG_LLM__MODEL_PATH: no file at {settings.model_path}")
        self.model = settings.model or settings.model_path.name
        self._settings = settings
        self._lock = threading.Lock()
        self._llama: Any = None

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def close(self) -> None:
        """The model is freed with this object; llama.cpp needs no explicit close."""

    def _load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ConfigError(
                    "the llamacpp backend needs llama-cpp-python: pip install '.[llamacpp]'"
                ) from exc
            self._llama = Llama(
                model_path=str(self._settings.model_path),
                n_ctx=self._settings.n_ctx,
                n_threads=self._settings.n_threads,
                verbose=False,
            )
        return self._llama

    def _create(self, prompt: Prompt, params: GenerationParams, stream: bool) -> Any:
        return self._load().create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in prompt.messages],
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stream=stream,
        )

    def check(self) -> None:
        if self._llama is None:
            raise UpstreamError(f"the model {self.model} is not loaded yet")

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        with self._lock:
            result = self._create(prompt, params, stream=False)
        usage = result.get("usage") or {}
        return Completion(
            result["choices"][0]["message"]["content"] or "",
            Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
        )

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        with self._lock:
            llama = self._load()
            pieces = []
            for event in self._create(prompt, params, stream=True):
                text = event["choices"][0]["delta"].get("content") or ""
                if text:
                    pieces.append(text)
                    yield Completion(text)
            # A stream reports no usage: count the answer's tokens; the rest of the context
            # (llama.n_tokens) is the prompt.
            generated = len(llama.tokenize("".join(pieces).encode(), add_bos=False))
            usage = Usage(max(llama.n_tokens - generated, 0), generated)
        yield Completion("", usage)

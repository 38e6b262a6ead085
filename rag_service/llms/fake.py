"""A deterministic stand-in for an LLM, for tests: it replies with a fixed text or, by default,
with the first sentence of the first passage and its citation, and streams word by word."""

from __future__ import annotations

import re
from collections.abc import Iterator

from rag_service.prompting import REFUSALS
from rag_service.text import split_sentences
from rag_service.types import Completion, GenerationParams, Prompt, Usage


class FakeLLM:
    backend = "fake"
    model = "fake"

    def __init__(self, reply: str | None = None) -> None:
        self._reply = reply
        self.prompts: list[Prompt] = []  # every prompt it was given, for tests to inspect

    def _text(self, prompt: Prompt) -> str:
        if self._reply is not None:
            return self._reply
        for chunk in prompt.passages[:1]:
            for sentence in split_sentences(chunk.text):
                if not sentence.text.startswith("#"):
                    return f"{sentence.text} [1]"
        return REFUSALS[prompt.language]

    def _usage(self, prompt: Prompt, text: str) -> Usage:
        words = sum(len(m.content.split()) for m in prompt.messages)
        return Usage(prompt_tokens=words, completion_tokens=len(text.split()))

    def check(self) -> None:
        """In-process: always able to answer."""

    def warm_up(self) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        self.prompts.append(prompt)
        text = self._text(prompt)
        return Completion(text, self._usage(prompt, text))

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        self.prompts.append(prompt)
        text = self._text(prompt)
        for piece in re.findall(r"\S+\s*|\s+", text):
            yield Completion(piece)
        yield Completion("", self._usage(prompt, text))

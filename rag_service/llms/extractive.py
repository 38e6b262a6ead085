"""The answerer that needs no model: it quotes the passages' sentences that best match the
question, each with its citation. The default until an LLM is configured."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from rag_service.prompting import REFUSALS
from rag_service.retrieval.tokenize import tokenize
from rag_service.text import split_sentences
from rag_service.types import Completion, GenerationParams, Prompt

# Later passages ranked lower: a sentence's score is discounted by this much per rank.
RANK_DISCOUNT = 0.1


@dataclass(frozen=True)
class _Candidate:
    n: int  # passage number
    order: int  # position in the passage
    text: str
    score: float


class ExtractiveAnswerer:
    backend = "extractive"
    model = "sentence-selection"

    def __init__(self, sentences: int = 2, passages: int = 3) -> None:
        self._sentences = sentences
        self._passages = passages

    def candidates(self, prompt: Prompt) -> list[_Candidate]:
        """Sentences of the top passages, scored by the question words they hold, weighted by
        how rare each word is among those sentences."""
        pieces = []
        for n, chunk in enumerate(prompt.passages[: self._passages], start=1):
            for order, sentence in enumerate(split_sentences(chunk.text)):
                if sentence.text.startswith("#"):  # a Markdown heading, not an answer
                    continue
                pieces.append((n, order, sentence.text, set(tokenize(sentence.text))))
        question = set(tokenize(prompt.question))
        df = Counter(token for *_, tokens in pieces for token in tokens & question)
        idf = {t: math.log(1 + len(pieces) / df[t]) for t in df}
        scored = []
        for n, order, text, tokens in pieces:
            overlap = sum(idf[t] for t in tokens & question)
            scored.append(_Candidate(n, order, text, overlap * (1 - RANK_DISCOUNT * (n - 1))))
        return scored

    def answer(self, prompt: Prompt) -> str:
        ranked = sorted(self.candidates(prompt), key=lambda c: -c.score)
        chosen = [c for c in ranked[: self._sentences] if c.score > 0]
        if not chosen:
            return REFUSALS[prompt.language]
        chosen.sort(key=lambda c: (c.n, c.order))  # read in document order
        space = "" if prompt.language == "zh" else " "  # Chinese sets no spaces between words
        return space.join(f"{c.text}{space}[{c.n}]" for c in chosen)

    def check(self) -> None:
        """In-process, no model: always able to answer."""

    def warm_up(self) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        return Completion(self.answer(prompt))

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        yield self.complete(prompt, params)

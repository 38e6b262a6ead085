"""Sentences with offsets, and a matching form of text that remembers where each character was.

Both the extractive answerer and citation checking cut passages into sentences and look for a
span of one text inside another, in Chinese and English alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rag_service.retrieval.tokenize import normalize

# A sentence ends at Chinese end punctuation, at . ! ? ; followed by a space or the end, or at a
# blank line; closing quotes and brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"[。！？；!?]+[”’」』）)\"']*|[.;]+[”’\"')\]]*(?=\s|$)|\n\s*\n")


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offsets in the text it was cut from
    end: int


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of ``text`` with their offsets, stripped of surrounding whitespace."""
    sentences: list[Sentence] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        _append_stripped(sentences, text, start, match.end())
        start = match.end()
    _append_stripped(sentences, text, start, len(text))
    return sentences


def _append_stripped(into: list[Sentence], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    into.append(Sentence(stripped, start + lead, start + lead + len(stripped)))


@dataclass(frozen=True)
class MatchForm:
    """``text`` reduced to what matters for matching, with a map back to the original offsets.

    Letters and digits only, NFKC-folded (full-width to half-width), lower-cased, Traditional
    Chinese as Simplified; spaces and punctuation dropped, so "RAG（检索增强）" and
    "rag (检索增强)" have the same form.
    """

    form: str
    offsets: tuple[int, ...]  # offsets[i]: where form[i] came from in the original text

    @classmethod
    def of(cls, text: str) -> MatchForm:
        chars: list[str] = []
        offsets: list[int] = []
        for i, char in enumerate(text):
            for folded in normalize(char):
                if unicodedata.category(folded)[0] in "LN":
                    chars.append(folded)
                    offsets.append(i)
        return cls("".join(chars), tuple(offsets))

    def find(self, needle: MatchForm) -> tuple[int, int] | None:
        """Original offsets (start, end) of ``needle``'s form inside this one, if present."""
        if not needle.form:
            return None
        at = self.form.find(needle.form)
        if at < 0:
            return None
        return self.offsets[at], self.offsets[at + len(needle.form) - 1] + 1

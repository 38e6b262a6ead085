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


# split_sentences cuts at ". " wherever it is; whole_sentences undoes the cuts that fall inside
# a sentence: after a word that is not a sentence's last ("et al.", "e.g.", "Mata v. Avianca"),
# after one that is followed by a number ("Fig. 2", "No. 5", "Jan. 2021"), ...
_NEVER_LAST = re.compile(r"\b(?:et al|e\.g|i\.e|vs?|cf|mrs?|ms|dr|prof|approx)\.$", re.IGNORECASE)
_BEFORE_NUMBER = re.compile(
    r"\b(?:figs?|nos?|vol|pp?|eq|sec|ch|art|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.$",
    re.IGNORECASE,
)
# ... before a piece that starts in lower case, and inside brackets left open, up to this long (a
# stray bracket must not join a whole paragraph).
_LOWER = re.compile(r"[a-z]")
_OPENING, _CLOSING_BRACKETS = "(（[【", ")）]】"
_LONGEST = 600


def whole_sentences(text: str) -> list[Sentence]:
    """``split_sentences``, with the cuts it makes inside a sentence undone: after an
    abbreviation ("Kojima et al. (2022) found"), inside brackets ("(Hu et al.; 2022)"), before a
    piece that starts in lower case; never across a line break. For quoting sentences whole;
    chunking and the refusal rule keep ``split_sentences``, whose cuts their figures were
    measured with."""
    merged: list[Sentence] = []
    for piece in split_sentences(text):
        if merged and _goes_on(merged[-1], piece, text):
            start = merged[-1].start
            merged[-1] = Sentence(text[start : piece.end], start, piece.end)
        else:
            merged.append(piece)
    return merged


def _goes_on(sentence: Sentence, following: Sentence, text: str) -> bool:
    """Whether the cut between two pieces of ``text`` falls inside one sentence."""
    if "\n" in text[sentence.end : following.start] or following.end - sentence.start > _LONGEST:
        return False
    if _open_brackets(sentence.text) > 0:
        return True
    core = sentence.text.rstrip(_CLOSING_BRACKETS + "\"'”’")  # "(Hoffmann et al.) revisited"
    if not core.endswith("."):
        return False
    return bool(
        _NEVER_LAST.search(core)
        or (_BEFORE_NUMBER.search(core) and following.text[:1].isdigit())
        or _LOWER.match(following.text)
    )


def _open_brackets(text: str) -> int:
    return sum(text.count(c) for c in _OPENING) - sum(text.count(c) for c in _CLOSING_BRACKETS)


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

"""Citations checked by the service, not taken on the model's word.

An answer cites passages as ``[n]`` (also ``[1, 2]`` and ``【n】``). A marker stands only when
``n`` numbers a passage that was in the prompt and that passage supports the sentence carrying
the marker: the sentence appears in it verbatim (after normalisation: width, case, script,
spacing and punctuation folded), or one of its sentences holds at least ``min_support`` of the
claim's words. A marker that does not stand is removed from the answer and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag_service.retrieval.tokenize import tokenize
from rag_service.text import MatchForm, Sentence, split_sentences
from rag_service.types import Chunk, Citation

_CLOSING = frozenset("。．.!?！？；;)）”’\"'」』")
_MARKER = re.compile(r"\s*(?:\[(\d+(?:\s*[,，、]\s*\d+)*)\]|【(\d+)】)")


def strip_markers(text: str) -> str:
    """``text`` without citation markers, e.g. a passage's own, before an answer cites it."""
    return _MARKER.sub("", text)


@dataclass(frozen=True)
class Mark:
    """Where a ``[n]`` that stood sits in the checked answer, and which citation it stands for
    (clients that render citations, such as OpenAI's annotations, need the offsets)."""

    start: int
    end: int
    citation: int  # index into the citations


@dataclass(frozen=True)
class CheckedAnswer:
    answer: str  # the answer with the markers that did not stand removed
    citations: list[Citation]
    dropped: int  # markers removed: unknown passage number, or no support in that passage
    marks: list[Mark] = field(default_factory=list)


@dataclass
class _Claim:
    text: str  # the sentence without its markers
    markers: list[int] = field(default_factory=list)  # indexes into the answer's markers


def _claims(answer: str, markers: Sequence[re.Match[str]]) -> list[_Claim]:
    """Sentences of the answer with the markers they carry. Markers that open a sentence (as
    in "... done. [2] Next ...") belong to the sentence before it."""
    claims: list[_Claim] = []
    for sentence in split_sentences(answer):
        # A marker ends in "]" or "】", never in whitespace, so its end lies in one sentence.
        inside = [i for i, m in enumerate(markers) if sentence.start < m.end() <= sentence.end]
        leading = 0
        while (
            leading < len(inside)
            and not MatchForm.of(answer[sentence.start : markers[inside[leading]].start()]).form
        ):
            leading += 1
        if claims:
            claims[-1].markers.extend(inside[:leading])
            inside = inside[leading:]
        text = _MARKER.sub("", sentence.text).strip()
        if MatchForm.of(text).form:
            claims.append(_Claim(text, inside))
    return claims


class _Passage:
    """A cited chunk, cut into sentences once, with their matching forms and tokens."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.form = MatchForm.of(chunk.text)
        self.sentences = split_sentences(chunk.text)
        self.tokens = [set(tokenize(s.text)) for s in self.sentences]

    def support(self, claim: str, min_support: float) -> tuple[int, int] | None:
        """Offsets in the chunk of the span that supports ``claim``, if one does."""
        exact = self.form.find(MatchForm.of(claim))
        if exact is not None:
            start, end = exact
            while end < len(self.chunk.text) and self.chunk.text[end] in _CLOSING:
                end += 1  # the quote ends where the sentence does, punctuation included
            return start, end
        words = set(tokenize(claim))
        if not words:
            return None
        best: Sentence | None = None
        best_share = 0.0
        for sentence, tokens in zip(self.sentences, self.tokens, strict=True):
            share = len(words & tokens) / len(words)
            if share > best_share:
                best, best_share = sentence, share
        if best is None or best_share < min_support:
            return None
        return best.start, best.end


def check_citations(answer: str, passages: Sequence[Chunk], min_support: float) -> CheckedAnswer:
    markers = list(_MARKER.finditer(answer))
    numbers = [[int(n) for n in re.findall(r"\d+", m.group(1) or m.group(2))] for m in markers]
    kept: list[dict[int, int]] = [{} for _ in markers]  # per marker: n -> citation index
    cache: dict[int, _Passage] = {}
    citations: dict[tuple[int, int, int], Citation] = {}
    index_of: dict[tuple[int, int, int], int] = {}  # each citation's place in the list
    dropped = 0
    for claim in _claims(answer, markers):
        for i in claim.markers:
            for n in numbers[i]:
                if not 1 <= n <= len(passages):
                    dropped += 1
                    continue
                if n not in cache:  # cut into sentences once per cited passage, not per marker
                    cache[n] = _Passage(passages[n - 1])
                passage = cache[n]
                span = passage.support(claim.text, min_support)
                if span is None:
                    dropped += 1
                    continue
                chunk = passage.chunk
                start, end = chunk.start + span[0], chunk.start + span[1]
                key = (n, start, end)
                kept[i].setdefault(n, index_of.setdefault(key, len(index_of)))
                if key not in citations:  # built only once per span, not per marker
                    quote = chunk.text[span[0] : span[1]]
                    citations[key] = Citation(
                        n, chunk.id, chunk.source, chunk.title, quote, start, end
                    )

    pieces: list[str] = []
    marks: list[Mark] = []
    last = length = 0  # read up to `last` in the answer; `length` written
    for match, stood in zip(markers, kept, strict=True):
        pieces.append(answer[last : match.start()])
        length += match.start() - last
        if stood:
            lead = match.group()[: len(match.group()) - len(match.group().lstrip())]
            pieces.append(lead)
            length += len(lead)
            for n, index in stood.items():
                pieces.append(f"[{n}]")
                marks.append(Mark(length, length + len(pieces[-1]), index))
                length += len(pieces[-1])
        last = match.end()
    pieces.append(answer[last:])
    return CheckedAnswer("".join(pieces), list(citations.values()), dropped, marks)

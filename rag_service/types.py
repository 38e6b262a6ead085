"""Plain data passed between the stages: chunks in, scored chunks out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Chroma metadata values must be scalars; None would be dropped, so absent pages are -1.
NO_PAGE = -1


@dataclass(frozen=True)
class Chunk:
    """A piece of one source document, with where it came from."""

    id: str
    text: str
    source: str  # path relative to the indexed folder, POSIX separators; also the document id
    title: str
    headings: tuple[str, ...]  # Markdown heading path down to this chunk
    start: int  # character offsets of `text` in the document's extracted text
    end: int
    page: int = NO_PAGE  # 1-based PDF page of `start`

    @property
    def embedding_text(self) -> str:
        """What is embedded: the text after its title and heading path, which disambiguate it."""
        context = " > ".join((self.title, *[h for h in self.headings if h != self.title]))
        return f"{context}\n{self.text}" if context else self.text

    def metadata(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "title": self.title,
            "headings": " > ".join(self.headings),
            "start": self.start,
            "end": self.end,
            "page": self.page,
        }

    @classmethod
    def from_record(cls, chunk_id: str, text: str, metadata: dict[str, Any]) -> Chunk:
        headings = str(metadata.get("headings", ""))
        return cls(
            id=chunk_id,
            text=text,
            source=str(metadata["source"]),
            title=str(metadata.get("title", "")),
            headings=tuple(headings.split(" > ")) if headings else (),
            start=int(metadata.get("start", 0)),
            end=int(metadata.get("end", 0)),
            page=int(metadata.get("page", NO_PAGE)),
        )


@dataclass(frozen=True)
class ScoredId:
    chunk_id: str
    score: float


@dataclass(frozen=True)
class Message:
    role: str  # system, user or assistant
    content: str


@dataclass(frozen=True)
class Prompt:
    """What an LLM is given: the rendered messages, and the parts they were rendered from
    (the extractive answerer reads those instead of the messages)."""

    question: str
    language: str  # en or zh: picks the template and the refusal message
    passages: tuple[Chunk, ...]  # numbered from 1 in the messages
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class GenerationParams:
    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Judgement:
    """A reader's verdict on whether a passage answers a question."""

    probability: float  # that it does
    prompt_tokens: int
    evaluated_tokens: int  # the prompt's tokens the model read; the rest it had cached
    ms: float


@dataclass(frozen=True)
class Completion:
    """A whole completion, or, in a stream, one piece of it (usage on the last, when known)."""

    text: str
    usage: Usage | None = None


@dataclass(frozen=True)
class Citation:
    n: int  # the passage's number in the prompt
    chunk_id: str
    source: str
    title: str
    quote: str  # the supporting span, verbatim from the source document
    start: int  # offsets of `quote` in the document's extracted text
    end: int

"""Split documents into chunks: Markdown on headings first, then each section either
recursively on paragraph, line, sentence (Chinese and Western punctuation), clause and word
boundaries (the default), or semantically: its sentences merged while neighbours' embeddings
stay similar (``RAG_CHUNKING__SPLITTER=semantic``).

Every chunk keeps its character offsets in the loaded text, so a citation can point at the
exact span; chunk ids derive from the content, so an unchanged chunk keeps its id (and its
vector) across reindexes.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.load import LoadedDocument
from rag_service.errors import ConfigError
from rag_service.protocols import Embedder
from rag_service.settings import ChunkingSettings
from rag_service.text import split_sentences
from rag_service.types import NO_PAGE, Chunk

# Coarsest first. Chinese sentence and clause marks carry no following space, so they are
# separators on their own; Western ones need the space to avoid splitting "3.14" or "e.g.".
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    "、",
    ", ",
    " ",
    "",
]

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


@dataclass(frozen=True)
class Section:
    start: int
    end: int
    headings: tuple[str, ...]


def markdown_sections(text: str, body_start: int = 0) -> list[Section]:
    """Sections between ATX headings (not inside fenced code), each with its heading path."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    start, in_fence = body_start, False
    offset = body_start
    for line in text[body_start:].splitlines(keepends=True):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _HEADING.match(line.rstrip("\n"))):
            if offset > start:
                sections.append(Section(start, offset, tuple(h for _, h in path)))
            level = len(match.group(1))
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, match.group(2))]
            start = offset
        offset += len(line)
    if offset > start:
        sections.append(Section(start, offset, tuple(h for _, h in path)))
    return sections


def _is_only_heading(text: str) -> bool:
    return all(not line.strip() or _HEADING.match(line) for line in text.splitlines())


def chunk_id(source: str, headings: tuple[str, ...], text: str, occurrence: int) -> str:
    key = "\x00".join((source, " > ".join(headings), text, str(occurrence)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _find_from(text: str, piece: str, cursor: int) -> int:
    """Where a piece the splitter cut out of ``text`` lies: its first occurrence at or after
    ``cursor`` (so repeated text maps to successive places), else its first occurrence."""
    found = text.find(piece, cursor)
    return found if found >= 0 else text.find(piece)


class SectionSplitter(Protocol):
    def split_text(self, text: str) -> list[str]:
        """Pieces of one section, each a substring of it, in order."""
        ...


def _recursive(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        strip_whitespace=True,
    )


class SemanticSplitter:
    """Consecutive sentences stay in one chunk while each is similar to the one before it
    (cosine of their document embeddings at least ``threshold``) and the chunk fits in
    ``chunk_size``; a topic shift starts a new chunk. Chunks do not overlap: their ends are
    meant to be where the text changes subject. A sentence longer than a chunk is cut
    recursively first, its pieces then treated as sentences."""

    def __init__(self, chunk_size: int, threshold: float, embedder: Embedder) -> None:
        self._size = chunk_size
        self._threshold = threshold
        self._embedder = embedder
        self._long = _recursive(chunk_size, 0)

    def _units(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for sentence in split_sentences(text):
            if len(sentence.text) <= self._size:
                spans.append((sentence.start, sentence.end))
                continue
            cursor = sentence.start
            for piece in self._long.split_text(sentence.text):
                start = _find_from(text, piece, cursor)
                spans.append((start, start + len(piece)))
                cursor = start + len(piece)
        return spans

    def split_text(self, text: str) -> list[str]:
        units = self._units(text)
        if len(units) < 2:
            return [text[a:b] for a, b in units]
        vectors = np.asarray(self._embedder.embed_documents([text[a:b] for a, b in units]))
        similarity = np.einsum("ij,ij->i", vectors[1:], vectors[:-1])
        pieces: list[str] = []
        start, end = units[0]
        for (a, b), similar in zip(units[1:], similarity, strict=True):
            if similar >= self._threshold and b - start <= self._size:
                end = b
            else:
                pieces.append(text[start:end])
                start, end = a, b
        pieces.append(text[start:end])
        return pieces


def build_section_splitter(
    settings: ChunkingSettings, embedder: Embedder | None = None
) -> SectionSplitter:
    if settings.splitter == "recursive":
        return _recursive(settings.chunk_size, settings.chunk_overlap)
    if embedder is None:
        raise ConfigError("the semantic splitter needs the embedder")
    return SemanticSplitter(settings.chunk_size, settings.semantic_threshold, embedder)


class Splitter:
    def __init__(self, settings: ChunkingSettings, embedder: Embedder | None = None) -> None:
        """``embedder``: what the semantic splitter compares sentences with (unused otherwise)."""
        self._splitter = build_section_splitter(settings, embedder)

    def split(self, doc: LoadedDocument) -> list[Chunk]:
        sections = (
            markdown_sections(doc.text, doc.body_start)
            if doc.markdown
            else [Section(doc.body_start, len(doc.text), ())]
        )
        seen: Counter[tuple[tuple[str, ...], str]] = Counter()
        chunks: list[Chunk] = []
        for section in sections:
            section_text = doc.text[section.start : section.end]
            if _is_only_heading(section_text):
                continue  # its heading lives on in the heading path of what follows
            cursor = 0
            for piece in self._splitter.split_text(section_text):
                if _is_only_heading(piece):
                    # A heading split off from a long first paragraph: as a chunk it would match
                    # its title words and nothing else; the heading path already carries it.
                    continue
                local = _find_from(section_text, piece, cursor)
                cursor = local + 1
                start = section.start + local
                occurrence = seen[(section.headings, piece)]
                seen[(section.headings, piece)] += 1
                chunks.append(
                    Chunk(
                        id=chunk_id(doc.source, section.headings, piece, occurrence),
                        text=piece,
                        source=doc.source,
                        title=doc.title,
                        headings=section.headings,
                        start=start,
                        end=start + len(piece),
                        page=_page_of(doc.page_starts, start),
                    )
                )
        return chunks


def _page_of(page_starts: tuple[int, ...], offset: int) -> int:
    if not page_starts:
        return NO_PAGE
    return bisect.bisect_right(page_starts, offset)

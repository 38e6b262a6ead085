"""Split documents into chunks: Markdown on headings first, then recursively on paragraph,
line, sentence (Chinese and Western punctuation), clause and word boundaries.

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

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.load import LoadedDocument
from rag_service.settings import ChunkingSettings
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


class Splitter:
    def __init__(self, settings: ChunkingSettings) -> None:
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            strip_whitespace=True,
        )

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
                found = section_text.find(piece, cursor)
                local = found if found >= 0 else section_text.find(piece)
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

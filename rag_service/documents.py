"""A source's text as the served index holds it: what a citation link opens.

The text is put back together from the source's chunks in the served generation, not read from
the indexed folder: the offsets of every citation are offsets in exactly this text (a file edited
since the last reindex would shift them), and a source is only a key looked up in the index's
manifest, never a path opened on disk, so no request can reach a file the index does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from rag_service.errors import BadRequest, NotFound
from rag_service.index_state import SourceEntry
from rag_service.serving import SearchService


@dataclass(frozen=True)
class DocumentText:
    source: str
    title: str
    text: str  # offsets as in chunks and citations; what no chunk covers is newlines
    generation: int
    entry: SourceEntry  # its manifest entry in that generation: hash, size, encoding...


def check_source(source: str) -> str:
    """``source`` if it can name an indexed document (a relative POSIX path inside the folder);
    a ``BadRequest`` that says why not otherwise."""
    if not source or len(source) > 1024:
        raise BadRequest("a source is a path of 1 to 1024 characters")
    if "\0" in source or "\\" in source:
        raise BadRequest("a source holds no NUL or backslash")
    path = PurePosixPath(source)
    if path.is_absolute() or any(part in ("..", ".") for part in source.split("/")):
        raise BadRequest("a source is a path relative to the indexed folder, without . or ..")
    return source


def _stitch(pieces: list[tuple[int, str]]) -> str:
    """One text from overlapping ``(start, text)`` pieces; gaps (separators the splitter left
    out, front matter) become newlines of the same length, so offsets stay exact."""
    out: list[str] = []
    pos = 0
    for start, text in sorted(pieces):
        if start > pos:
            out.append("\n" * (start - pos))
            pos = start
        if start + len(text) > pos:
            out.append(text[pos - start :])
            pos = start + len(text)
    return "".join(out)


def read_document(search: SearchService, source: str) -> DocumentText:
    check_source(source)
    with search.current() as served:
        entry = search.state.manifest(served.pointer).get(source)
        if entry is None:
            raise NotFound(f"no document {source!r} in the served index")
        chunks = served.store.get(entry.chunk_ids)
        generation = served.pointer.generation
    text = _stitch([(c.start, c.text) for c in chunks])
    return DocumentText(source, entry.title, text, generation, entry)

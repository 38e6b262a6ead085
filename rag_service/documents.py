"""A source's text as the served index holds it: what a citation link opens.

The text is put back together from the source's chunks in the served generation, not read from
the indexed folder: the offsets of every citation are offsets in exactly this text (a file edited
since the last reindex would shift them), and a source is only a key looked up in the index's
manifest, never a path opened on disk, so no request can reach a file the index does not hold.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePosixPath

from rag_service.errors import BadRequest, NameTaken, NotFound
from rag_service.index_state import SourceEntry
from rag_service.names import MAX_FILE_NAME_BYTES, folded, hidden_character, nfc, utf8_length
from rag_service.serving import SearchService

MAX_SOURCE_CHARS = 1024
# A document is a file under its collection's folder, which is under the data directory: the
# whole path must stay well inside the 4096 bytes the kernel takes.
MAX_SOURCE_BYTES = 3072


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
    if not source or len(source) > MAX_SOURCE_CHARS or utf8_length(source) > MAX_SOURCE_BYTES:
        raise BadRequest(
            f"a source is a path of 1 to {MAX_SOURCE_CHARS} characters "
            f"({MAX_SOURCE_BYTES} bytes in UTF-8)"
        )
    if "\0" in source or "\\" in source:
        raise BadRequest("a source holds no NUL or backslash")
    path = PurePosixPath(source)
    if path.is_absolute() or any(part in ("..", ".") for part in source.split("/")):
        raise BadRequest("a source is a path relative to the indexed folder, without . or ..")
    if any(utf8_length(part) > MAX_FILE_NAME_BYTES for part in source.split("/")):
        raise BadRequest(f"a folder or file name in a path is at most {MAX_FILE_NAME_BYTES} bytes")
    return source


def check_new_source(source: str) -> str:
    """``source`` in NFC if a document may be written under it (``check_source``, and no
    invisible character: see ``rag_service.names``)."""
    source = check_source(nfc(source))
    if (char := hidden_character(source)) is not None:
        raise BadRequest(f"a document path holds no control or format character ({char})")
    return source


def spelled(source: str, known: Collection[str]) -> str:
    """How the documents ``known`` spell ``source``: itself, or a document's name that is the
    same in NFC (a file named on macOS, decomposed)."""
    if source in known:
        return source
    return next((name for name in known if nfc(name) == nfc(source)), source)


def claim_source(source: str, known: Collection[str]) -> str:
    """Where a write of ``source`` (in NFC) goes beside the documents ``known``: ``spelled``;
    ``NameTaken`` if it differs from one of them only in case."""
    source = spelled(source, known)
    taken = next((k for k in known if k != source and folded(k) == folded(source)), None)
    if taken is not None:
        raise NameTaken(
            f"{source!r} differs only in case from the document {taken!r}: write {taken!r} to "
            "replace it, or delete it first"
        )
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
        manifest = search.state.manifest(served.pointer)
        source = spelled(source, manifest)
        entry = manifest.get(source)
        if entry is None:
            raise NotFound(f"no document {source!r} in the served index")
        chunks = served.store.get(entry.chunk_ids)
        generation = served.pointer.generation
    text = _stitch([(c.start, c.text) for c in chunks])
    return DocumentText(source, entry.title, text, generation, entry)

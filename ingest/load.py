"""Turn a file's bytes into text, one loader per format. Anything that cannot be read raises
``DocumentUnreadable`` with a reason a person can act on; the pipeline reports it and goes on."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ingest import encoding, office
from rag_service.errors import DocumentUnreadable


@dataclass(frozen=True)
class LoadedDocument:
    source: str
    title: str
    text: str
    markdown: bool  # split on headings first
    body_start: int = 0  # where content starts (after Markdown front matter)
    page_starts: tuple[int, ...] = field(default=())  # PDF: offset in `text` where each page starts
    encoding: str | None = None  # the codec a text format was decoded with; None for binary ones


def _decode(source: str, data: bytes, *, html: bool = False) -> encoding.Decoded:
    decoded = encoding.decode(source, data, html=html)
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    return encoding.Decoded(text, decoded.encoding)


def _require_text(source: str, text: str) -> None:
    if not text.strip():
        raise DocumentUnreadable(source, "no text (empty file)")


def _stem(source: str) -> str:
    return PurePosixPath(source).stem


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:\s*['\"]?(.+?)['\"]?\s*$", re.MULTILINE)
_FIRST_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def load_markdown(source: str, data: bytes) -> LoadedDocument:
    decoded = _decode(source, data)
    text = decoded.text
    _require_text(source, text)
    body_start = 0
    title = ""
    if front := _FRONT_MATTER.match(text):
        body_start = front.end()
        if found := _FRONT_MATTER_TITLE.search(front.group(1)):
            title = found.group(1)
    if not title and (h1 := _FIRST_H1.search(text, body_start)):
        title = h1.group(1)
    _require_text(source, text[body_start:])
    return LoadedDocument(
        source,
        title or _stem(source),
        text,
        markdown=True,
        body_start=body_start,
        encoding=decoded.encoding,
    )


def load_text(source: str, data: bytes) -> LoadedDocument:
    decoded = _decode(source, data)
    _require_text(source, decoded.text)
    return LoadedDocument(
        source, _stem(source), decoded.text, markdown=False, encoding=decoded.encoding
    )


_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def load_html(source: str, data: bytes) -> LoadedDocument:
    decoded = _decode(source, data, html=True)
    title, text = _html_markdown(decoded.text)
    _require_text(source, text)
    return LoadedDocument(
        source, title or _stem(source), text, markdown=True, encoding=decoded.encoding
    )


def _html_markdown(html: str) -> tuple[str, str]:
    """The page's title (its <title>, else its first h1) and its text as Markdown."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["head", "title", "script", "style", "noscript", "template"]):
        tag.decompose()
    # Headings become Markdown headings so the splitter keeps a heading path for HTML too.
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    text = _BLANK_RUNS.sub("\n\n", soup.get_text("\n")).strip()
    if not title and (h1 := _FIRST_H1.search(text)):
        title = h1.group(1)
    return title, text


def load_pdf(source: str, data: bytes) -> LoadedDocument:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        # pypdf tries the empty password itself; a PDF it does not open needs a real one.
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise DocumentUnreadable(source, "encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.title or "").strip() if reader.metadata else ""
    except DependencyError as exc:  # AES without the cryptography package
        raise DocumentUnreadable(source, f"encrypted PDF, cannot decrypt ({exc})") from None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentUnreadable(source, f"invalid PDF ({exc})") from None
    page_starts, parts, offset = [], [], 0
    for page_text in pages:
        page_starts.append(offset)
        parts.append(page_text)
        offset += len(page_text) + 2
    text = "\n\n".join(parts)
    if not text.strip():
        raise DocumentUnreadable(source, "PDF has no extractable text (scanned images need OCR)")
    return LoadedDocument(
        source, title or _stem(source), text, markdown=False, page_starts=tuple(page_starts)
    )


def load_csv(source: str, data: bytes) -> LoadedDocument:
    decoded = _decode(source, data)
    text = office.table_text(csv.reader(io.StringIO(decoded.text)))
    _require_text(source, text)
    return LoadedDocument(source, _stem(source), text, markdown=True, encoding=decoded.encoding)


def _office_loader(
    convert: Callable[[str, bytes], tuple[str, str]],
) -> Callable[[str, bytes], LoadedDocument]:
    def load(source: str, data: bytes) -> LoadedDocument:
        text, title = convert(source, data)
        _require_text(source, text)
        if not title and (h1 := _FIRST_H1.search(text)):
            title = h1.group(1)
        return LoadedDocument(source, title.strip() or _stem(source), text, markdown=True)

    return load


def load_epub(source: str, data: bytes) -> LoadedDocument:
    chapters, title = office.epub_chapters(source, data)
    # Each chapter is XHTML with its own declared encoding; one that cannot be read spoils the
    # book, as a book with a missing chapter would be cited as if whole.
    pages = [_html_markdown(_decode(source, chapter, html=True).text)[1] for chapter in chapters]
    text = "\n\n".join(page for page in pages if page)
    _require_text(source, text)
    if not title and (h1 := _FIRST_H1.search(text)):
        title = h1.group(1)
    return LoadedDocument(source, title or _stem(source), text, markdown=True)


LOADERS: dict[str, Callable[[str, bytes], LoadedDocument]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".csv": load_csv,
    ".docx": _office_loader(office.docx_markdown),
    ".pptx": _office_loader(office.pptx_markdown),
    ".xlsx": _office_loader(office.xlsx_markdown),
    ".epub": load_epub,
}


def is_supported(source: str) -> bool:
    return PurePosixPath(source).suffix.lower() in LOADERS


def load_document(source: str, data: bytes) -> LoadedDocument:
    """The loader of the file's format; whatever it raises becomes ``DocumentUnreadable``."""
    if not data:
        raise DocumentUnreadable(source, "no text (empty file)")
    suffix = PurePosixPath(source).suffix.lower()
    try:
        return LOADERS[suffix](source, data)
    except DocumentUnreadable:
        raise
    except Exception as exc:  # parsers meet hostile bytes: one bad file must not stop a reindex
        message = " ".join(str(exc).split())[:200]
        raise DocumentUnreadable(
            source, f"cannot load {suffix}: {type(exc).__name__}: {message}"
        ) from exc

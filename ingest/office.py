"""Zip-based documents (Word, PowerPoint, Excel, EPUB) as Markdown, so the splitter keeps a
heading path: Word's heading styles, one ``## Slide N: title`` per slide, one ``## sheet`` per
worksheet, EPUB chapters through the HTML loader.

Tables become one ``column: value`` block per row rather than pipe tables: the splitter cuts
long tables between rows, and a chunk from the middle of a pipe table would have lost its
header line, where a block still names every value it holds (and embeds better, as the words
of the header sit beside each value).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterable, Sequence
from xml.etree import ElementTree

from rag_service.errors import DocumentUnreadable

# Office files and EPUBs are zips, and a zip can claim gigabytes in a few kilobytes. Members
# and declared sizes are checked before any parser inflates anything: text documents compress
# about 3-20x, so 100x the file's size (and never above 200 MB) leaves real files room and
# stops a bomb before it costs memory.
MAX_MEMBERS = 10_000
MAX_EXPANSION = 100
MAX_UNCOMPRESSED = 200 * 1024 * 1024
# openpyxl reads a sheet cell by cell; a sheet with a million rows is data, not a document.
MAX_CELLS = 200_000
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML (and legacy .doc/.xls)


def open_zip(source: str, data: bytes, kind: str) -> zipfile.ZipFile:
    """The zip inside ``data``, checked against bombs, or ``DocumentUnreadable``."""
    if data.startswith(_OLE_MAGIC):
        raise DocumentUnreadable(
            source, f"encrypted or legacy (pre-2007) {kind} file; save it unprotected as {kind}"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentUnreadable(source, f"not a valid {kind} file (not a zip: {exc})") from None
    if len(members) > MAX_MEMBERS:
        raise DocumentUnreadable(source, f"zip has {len(members)} members (at most {MAX_MEMBERS})")
    declared = sum(member.file_size for member in members)
    if declared > min(MAX_EXPANSION * len(data), MAX_UNCOMPRESSED):
        raise DocumentUnreadable(
            source, f"zip bomb? {len(data)} bytes claim {declared} uncompressed, too much to open"
        )
    return archive


def _rows_as_blocks(rows: Sequence[Sequence[str]]) -> str:
    """The first row names the columns; each later row is a block of ``column: value`` lines."""
    header, *body = rows
    names = [name or f"column {i + 1}" for i, name in enumerate(header)]
    if not body:
        return " | ".join(header)
    blocks = []
    for row in body:
        lines = [f"{name}: {value}" for name, value in zip(names, row, strict=False) if value]
        if lines:
            blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def table_text(rows: Iterable[Sequence[object]]) -> str:
    """A table as text: cells stripped, empty rows and columns dropped."""
    cells = [[_cell(value) for value in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    padded = [row + [""] * (width - len(row)) for row in cells]
    used = [i for i in range(width) if any(row[i] for row in padded)]
    return _rows_as_blocks([[row[i] for i in used] for row in padded])


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())


def docx_markdown(source: str, data: bytes) -> tuple[str, str]:
    """Word's text in document order (paragraphs and tables), its core title."""
    import docx
    from docx.table import Table

    open_zip(source, data, ".docx")
    document = docx.Document(io.BytesIO(data))
    parts = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts.append(table_text([cell.text for cell in row.cells] for row in block.rows))
            continue
        text = block.text.strip()
        if text:
            parts.append(f"{'#' * level} {text}" if (level := _heading_level(block)) else text)
    return "\n\n".join(p for p in parts if p), document.core_properties.title or ""


def _heading_level(paragraph: object) -> int:
    style = getattr(getattr(paragraph, "style", None), "name", "") or ""
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        level = style.removeprefix("Heading ")
        return min(int(level), 6) if level.isdigit() else 0
    return 0


def pptx_markdown(source: str, data: bytes) -> tuple[str, str]:
    """One ``## Slide N: title`` section per slide: its text frames, tables and notes; the
    core title, else the first slide's title."""
    import pptx

    open_zip(source, data, ".pptx")
    presentation = pptx.Presentation(io.BytesIO(data))
    parts, titles = [], []
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        titles.append(title)
        parts.append(f"## Slide {number}: {title}" if title else f"## Slide {number}")
        for shape in slide.shapes:
            if shape is title_shape:
                continue
            if shape.has_text_frame and shape.text_frame.text.strip():
                parts.append(shape.text_frame.text.strip())
            if getattr(shape, "has_table", False):
                rows = shape.table.rows
                parts.append(table_text([cell.text for cell in row.cells] for row in rows))
        notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if notes is not None and notes.text.strip():
            parts.append(f"Notes: {notes.text.strip()}")
    first_title = next((t for t in titles if t), "")
    return "\n\n".join(p for p in parts if p), presentation.core_properties.title or first_title


def xlsx_markdown(source: str, data: bytes) -> tuple[str, str]:
    """One ``## sheet`` section per worksheet with its rows, at most ``MAX_CELLS`` cells."""
    import openpyxl

    open_zip(source, data, ".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        parts, budget = [], MAX_CELLS
        for sheet in workbook.worksheets:
            rows = []
            for row in sheet.iter_rows(values_only=True):
                budget -= len(row)
                if budget < 0:
                    raise DocumentUnreadable(source, f"more than {MAX_CELLS} cells")
                rows.append(row)
            if table := table_text(rows):
                parts += [f"## {sheet.title}", table]
        title = workbook.properties.title or ""
    finally:
        workbook.close()
    return "\n\n".join(parts), title


_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


def epub_chapters(source: str, data: bytes) -> tuple[list[bytes], str]:
    """The XHTML chapters in spine (reading) order and the book's title.

    Only names listed in the zip are read, so an href with ``..`` or an absolute path is
    skipped, never resolved against the file system."""
    archive = open_zip(source, data, ".epub")
    names = set(archive.namelist())
    container = _xml(source, archive, "META-INF/container.xml", names)
    rootfile = container.find(f"{_CONTAINER}rootfiles/{_CONTAINER}rootfile")
    opf_path = _inside(rootfile.get("full-path", "") if rootfile is not None else "", "", names)
    if opf_path is None:
        raise DocumentUnreadable(source, "EPUB without a package document (content.opf)")
    opf = _xml(source, archive, opf_path, names)
    base = posixpath.dirname(opf_path)
    manifest = {
        item.get("id"): item.get("href", "") for item in opf.iter(f"{_OPF}item") if item.get("id")
    }
    chapters = []
    for ref in opf.iter(f"{_OPF}itemref"):
        if (path := _inside(manifest.get(ref.get("idref"), ""), base, names)) is not None:
            chapters.append(archive.read(path))
    title = opf.findtext(f".//{_DC_TITLE}") or ""
    return chapters, title.strip()


def _inside(href: str, base: str, names: set[str]) -> str | None:
    if not href or href.startswith("/") or ".." in href.split("/") or ":" in href:
        return None
    path = posixpath.normpath(posixpath.join(base, href.split("#")[0]))
    return path if path in names else None


def _xml(source: str, archive: zipfile.ZipFile, name: str, names: set[str]) -> ElementTree.Element:
    if name not in names:
        raise DocumentUnreadable(source, f"EPUB without {name}")
    # The stdlib parser expands no external entities; a DOCTYPE is refused outright, as the
    # only reason to put one in container.xml or an OPF is an entity expansion bomb.
    raw = archive.read(name)
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise DocumentUnreadable(source, f"EPUB {name} declares a DOCTYPE")
    try:
        return ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise DocumentUnreadable(source, f"EPUB {name} is not valid XML ({exc})") from None

"""Word, PowerPoint, Excel, CSV and EPUB files built in the test, loaded and split."""

from __future__ import annotations

import io
import zipfile

import pytest

from ingest.load import LoadedDocument, is_supported, load_document
from ingest.split import Splitter
from rag_service.errors import DocumentUnreadable
from rag_service.settings import ChunkingSettings
from rag_service.types import Chunk

pytestmark = pytest.mark.unit


def chunks(doc: LoadedDocument, size: int = 200) -> list[Chunk]:
    return Splitter(ChunkingSettings(chunk_size=size, chunk_overlap=0)).split(doc)


def chunk_with(doc: LoadedDocument, text: str, size: int = 200) -> Chunk:
    return next(c for c in chunks(doc, size) if text in c.text)


def make_docx(title: str = "季度报告") -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("概述", level=1)
    document.add_paragraph("本季度向量数据库的查询延迟下降了一半。")
    document.add_heading("成本", level=2)
    table = document.add_table(rows=3, cols=2)
    for row, values in zip(
        table.rows, [("项目", "费用"), ("存储", "120 元"), ("计算", "300 元")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("表格之后的段落。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "检索增强生成"
    slide.placeholders[1].text = "先检索相关段落，再让模型作答。"
    slide.notes_slide.notes_text_frame.text = "演讲者备注：强调引用。"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "Benchmarks"
    shape = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(4), Inches(1))
    for r, values in enumerate([("model", "recall"), ("bm25", "0.61"), ("hybrid", "0.78")]):
        for c, value in enumerate(values):
            shape.table.cell(r, c).text = value
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def make_xlsx(rows: int = 3) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "价格表"
    sheet.append(["产品", None, "单价"])  # an empty column, dropped
    for i in range(rows):
        sheet.append([f"产品{i}", None, 10 + i])
    sheet.append([])
    workbook.create_sheet("Empty")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_epub(chapters: dict[str, str], spine: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        items = "".join(f'<item id="c{i}" href="{href}"/>' for i, href in enumerate(spine))
        refs = "".join(f'<itemref idref="c{i}"/>' for i in range(len(spine)))
        archive.writestr(
            "OEBPS/content.opf",
            '<package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>小书</dc:title>'
            f"</metadata><manifest>{items}</manifest><spine>{refs}</spine></package>",
        )
        for name, html in chapters.items():
            archive.writestr(name, html)
    return out.getvalue()


def test_docx_headings_tables_and_order() -> None:
    doc = load_document("reports/q3.docx", make_docx())
    assert doc.title == "季度报告" and doc.markdown and doc.encoding is None
    assert doc.text.index("查询延迟") < doc.text.index("项目: 存储") < doc.text.index("表格之后")
    assert chunk_with(doc, "查询延迟").headings == ("概述",)
    cost = chunk_with(doc, "存储")
    assert cost.headings == ("概述", "成本")
    assert "项目: 计算\n费用: 300 元" in cost.text


def test_docx_title_falls_back_to_first_heading() -> None:
    assert load_document("a.docx", make_docx(title="")).title == "概述"


def test_pptx_slides_titles_tables_and_notes() -> None:
    doc = load_document("talk.pptx", make_pptx())
    assert doc.title == "检索增强生成"  # no core title: the first slide's
    first = chunk_with(doc, "先检索相关段落")
    assert first.headings == ("Slide 1: 检索增强生成",)
    assert "演讲者备注" in first.text
    table = chunk_with(doc, "hybrid")
    assert table.headings == ("Slide 2: Benchmarks",)
    assert "model: hybrid\nrecall: 0.78" in table.text


def test_xlsx_sheets_rows_and_empty_columns() -> None:
    doc = load_document("prices.xlsx", make_xlsx())
    assert "## 价格表" in doc.text and "Empty" not in doc.text
    row = chunk_with(doc, "产品1")
    assert row.headings == ("价格表",)
    assert "产品: 产品1\n单价: 11" in row.text
    assert "None" not in doc.text


def test_a_chunk_from_the_middle_of_a_long_table_still_names_its_columns() -> None:
    doc = load_document("prices.xlsx", make_xlsx(rows=200))
    middle = chunk_with(doc, "产品: 产品150\n", size=120)
    assert middle.headings == ("价格表",)
    assert "单价: 160" in middle.text


def test_csv_in_gbk_is_decoded_and_read_as_rows() -> None:
    data = "城市,人口\n北京,2189万\n上海,2487万\n深圳,1768万\n".encode("gbk")
    doc = load_document("cities.csv", data)
    assert doc.encoding == "gb18030"
    assert "城市: 上海\n人口: 2487万" in doc.text


def test_epub_chapters_in_spine_order_and_hrefs_outside_the_zip_ignored() -> None:
    chapter = '<html><head><meta charset="utf-8"/></head><body><h1>{}</h1><p>{}</p></body></html>'
    data = make_epub(
        {
            "OEBPS/two.xhtml": chapter.format("第二章", "后读的内容。"),
            "OEBPS/one.xhtml": chapter.format("第一章", "先读的内容。"),
            "secret.xhtml": chapter.format("Secret", "outside the content folder"),
        },
        spine=["one.xhtml", "two.xhtml", "../secret.xhtml", "/etc/passwd"],
    )
    doc = load_document("book.epub", data)
    assert doc.title == "小书"
    assert doc.text.index("先读") < doc.text.index("后读")
    assert "outside" not in doc.text
    assert chunk_with(doc, "后读").headings == ("第二章",)


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/document.xml", b" " * (50 * 1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("fake.docx", b"this is plain text, not a zip", "not a valid .docx file (not a zip"),
        ("bomb.docx", zip_bomb(), "zip bomb?"),
        ("cut.xlsx", make_xlsx()[:2000], "not a valid .xlsx file"),
        ("locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "encrypted"),
        ("empty.pptx", b"PK\x05\x06" + b"\x00" * 18, "cannot load .pptx"),
        ("bad.epub", b"PK\x05\x06" + b"\x00" * 18, "EPUB without META-INF/container.xml"),
    ],
)
def test_hostile_zip_files_say_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document(name, data)
    assert reason in info.value.reason
    assert info.value.source == name


def test_new_formats_are_supported() -> None:
    for name in ("a.docx", "b.PPTX", "c.xlsx", "d.csv", "e.epub"):
        assert is_supported(name)
    for name in ("f.doc", "g.xls", "h.ppt"):
        assert not is_supported(name)

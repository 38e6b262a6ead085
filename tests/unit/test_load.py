from __future__ import annotations

import pytest

from ingest.load import is_supported, load_document
from rag_service.errors import DocumentUnreadable
from tests.pdfgen import make_pdf

pytestmark = pytest.mark.unit


def test_markdown_title_comes_from_front_matter_and_body_skips_it() -> None:
    data = b"---\ntitle: 'Front title'\ntags: [a]\n---\n# Heading title\n\nBody.\n"
    doc = load_document("notes/a.md", data)
    assert doc.title == "Front title"
    assert doc.markdown
    assert doc.text[doc.body_start :].startswith("# Heading title")


def test_markdown_title_falls_back_to_first_h1_then_file_name() -> None:
    assert load_document("a.md", "intro\n\n# 注意力机制\n\ntext".encode()).title == "注意力机制"
    assert load_document("dir/no-heading.md", b"just text").title == "no-heading"


def test_text_keeps_content_and_normalises_newlines() -> None:
    doc = load_document("a.txt", b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert doc.text == "line one\nline two\n"
    assert not doc.markdown


def test_html_drops_scripts_and_keeps_headings_as_markdown() -> None:
    html = (
        b"<html><head><title>Page</title><style>p{}</style></head><body>"
        b"<h1>Top</h1><script>alert(1)</script><p>First para.</p>"
        b"<h2>Sub</h2><p>Second para.</p></body></html>"
    )
    doc = load_document("p.html", html)
    assert doc.title == "Page"
    assert "alert" not in doc.text and "p{}" not in doc.text
    assert "# Top" in doc.text and "## Sub" in doc.text
    assert doc.text.index("First para.") < doc.text.index("Second para.")


def test_pdf_pages_and_title() -> None:
    doc = load_document("r.pdf", make_pdf(["First page text", "Second page text"], "Report"))
    assert doc.title == "Report"
    assert "First page text" in doc.text and "Second page text" in doc.text
    assert len(doc.page_starts) == 2
    assert doc.text[doc.page_starts[1] :].startswith("Second page text")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b"  \n\t\n", "empty"),
        ("binary.txt", b"PK\x03\x04\x00\x00binary", "binary"),
        ("latin1.md", b"caf\xe9 au lait", "not valid UTF-8 (byte 0xe9 at offset 3)"),
        ("broken.pdf", b"%PDF-1.4\nthis is not a pdf", "invalid PDF"),
        ("image-only.pdf", make_pdf([""]), "no extractable text"),
    ],
)
def test_unreadable_files_say_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document(name, data)
    assert reason in info.value.reason
    assert info.value.source == name


def test_supported_formats() -> None:
    for name in ("a.md", "b.MARKDOWN", "c.txt", "d.html", "e.htm", "f.pdf"):
        assert is_supported(name)
    for name in ("g.jsonl", "h.png", "Makefile"):
        assert not is_supported(name)

"""Text in every encoding we promise to read, and the cases that must be reported, not guessed."""

from __future__ import annotations

import codecs

import pytest

from ingest.load import load_document
from ingest.split import Splitter
from rag_service.errors import DocumentUnreadable
from rag_service.settings import ChunkingSettings

pytestmark = pytest.mark.unit

SIMPLIFIED = "向量数据库把文本的嵌入向量存起来，查询时找出与问题最相近的段落，再交给模型回答。"
TRADITIONAL = "向量資料庫把文本的嵌入向量存起來，查詢時找出與問題最相近的段落，再交給模型回答。"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (SIMPLIFIED.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + SIMPLIFIED.encode("utf-8"), "utf-8-sig"),
        (SIMPLIFIED.encode("utf-16"), "utf-16"),  # with its BOM, and full of NUL bytes
        (codecs.BOM_UTF16_BE + SIMPLIFIED.encode("utf-16-be"), "utf-16"),
        (SIMPLIFIED.encode("utf-32"), "utf-32"),
        (SIMPLIFIED.encode("gbk"), "gb18030"),
        (SIMPLIFIED.encode("gb18030"), "gb18030"),
    ],
)
def test_simplified_chinese_in_each_encoding(data: bytes, encoding: str) -> None:
    doc = load_document("notes.txt", data)
    assert doc.text == SIMPLIFIED
    assert doc.encoding == encoding


def test_big5_text_and_markdown() -> None:
    doc = load_document("notes.txt", TRADITIONAL.encode("big5"))
    assert (doc.text, doc.encoding) == (TRADITIONAL, "cp950")
    md = load_document("notes.md", f"# 資料庫\n\n{TRADITIONAL}\n".encode("big5"))
    assert md.title == "資料庫" and md.encoding == "cp950"


def test_gb18030_four_byte_characters() -> None:
    text = SIMPLIFIED + "㐀䶵"  # CJK extension A: only GB18030's four-byte codes hold them
    assert load_document("a.txt", text.encode("gb18030")).text == text


def test_big5_html_page_respects_its_meta_charset_and_keeps_headings() -> None:
    page = (
        '<html><head><meta charset="big5"><title>資料庫</title></head><body>'
        f"<h1>向量檢索</h1><p>{TRADITIONAL}</p></body></html>"
    )
    doc = load_document("page.html", page.encode("big5"))
    assert doc.encoding == "cp950" and doc.title == "資料庫"
    chunk = Splitter(ChunkingSettings()).split(doc)[0]
    assert chunk.headings == ("向量檢索",) and TRADITIONAL in chunk.text


def test_http_equiv_gb2312_declaration_is_read_as_gb18030() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        f"</head><body><p>{SIMPLIFIED}</p></body></html>"
    )
    doc = load_document("page.htm", page.encode("gbk"))
    assert doc.encoding == "gb18030" and SIMPLIFIED in doc.text


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        # A byte that is no Big5 at all.
        (
            '<meta charset="big5"><p>数据库\udc80</p>',
            "declares charset 'big5' but is not valid cp950",
        ),
        # GBK bytes that Big5 happens to decode, into characters nobody writes.
        (
            f'<meta charset="big5"><p>{SIMPLIFIED}</p>',
            "declares charset 'big5' but reads as gb18030",
        ),
        ('<meta charset="utf-8"><p>数据库</p>', "declares charset 'utf-8' but is not valid utf-8"),
        ('<meta charset="klingon"><p>数据库</p>', "declares an unknown charset 'klingon'"),
    ],
)
def test_a_wrong_declared_charset_is_reported(page: str, reason: str) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document("page.html", page.encode("gbk", errors="surrogateescape"))
    assert reason in info.value.reason


@pytest.mark.parametrize(
    "data",
    [
        "方法".encode("gbk"),  # also valid Big5, and both read as Chinese
        "預訓".encode("big5"),
        "预训".encode("gbk"),  # also valid UTF-8 ("Ԥѵ")
        # EUC-KR has GB2312's layout: Korean reads as fluent-looking Chinese nonsense.
        "대한민국의 수도는 서울특별시이며 공용어는 한국어이다.".encode("euc-kr"),
    ],
)
def test_an_ambiguous_short_text_is_reported_not_guessed(data: bytes) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document("short.txt", data)
    assert info.value.reason.startswith("cannot tell the encoding with confidence")
    assert "save the file as UTF-8" in info.value.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"caf\xe9 au lait", "not valid UTF-8 (byte 0xe9 at offset 3), nor GB18030 or Big5"),
        (b"\xff\xfe\x00", "starts with a utf-16 byte order mark but is not valid utf-16"),
        (
            "日本語の文章は漢字と平仮名で書かれる。".encode("shift_jis"),
            "does not read as GB18030 or Big5",
        ),
    ],
)
def test_other_bytes_are_reported_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentUnreadable) as info:
        load_document("a.txt", data)
    assert reason in info.value.reason


def test_european_utf8_is_not_mistaken_for_chinese() -> None:
    for text in ("café crème brûlée", "Ärger über Größe", "Москва — столица"):
        doc = load_document("a.txt", text.encode("utf-8"))
        assert (doc.text, doc.encoding) == (text, "utf-8")

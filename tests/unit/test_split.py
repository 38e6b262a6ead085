from __future__ import annotations

import pytest

from ingest.load import LoadedDocument, load_document
from ingest.split import Splitter, markdown_sections
from rag_service.settings import ChunkingSettings

pytestmark = pytest.mark.unit


def split(doc: LoadedDocument, size: int = 120, overlap: int = 20) -> list:
    return Splitter(ChunkingSettings(chunk_size=size, chunk_overlap=overlap)).split(doc)


CHINESE = (
    "检索增强生成把外部知识接入大模型。它先检索相关片段！然后再生成回答？"
    "这样可以减少幻觉；同时还能给出引用。"
) * 6


def test_chinese_text_splits_after_sentence_punctuation() -> None:
    chunks = split(load_document("zh.txt", CHINESE.encode()), size=60, overlap=0)
    assert len(chunks) > 3
    assert all(len(c.text) <= 60 for c in chunks)
    # keep_separator="end": every chunk but possibly the last ends on a sentence mark.
    assert all(c.text[-1] in "。！？；" for c in chunks[:-1])


def test_offsets_point_at_the_chunk_text() -> None:
    for name, data in [
        ("zh.txt", CHINESE.encode()),
        ("a.md", ("# T\n\n## A\n\n" + "word " * 80 + "\n\n## B\n\n" + CHINESE).encode()),
    ]:
        doc = load_document(name, data)
        chunks = split(doc, size=80, overlap=15)
        for chunk in chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
        starts = [c.start for c in chunks]
        assert starts == sorted(starts)


def test_markdown_heading_path_and_code_fences() -> None:
    text = (
        "# Guide\n\nIntro text.\n\n## Install\n\nRun it.\n\n```sh\n# not a heading\nmake\n```\n\n"
        "### Linux\n\nUse apt.\n\n## Use\n\nCall it.\n"
    )
    paths = [s.headings for s in markdown_sections(text)]
    assert paths == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Use"),
    ]
    chunks = split(load_document("g.md", text.encode()), size=200)
    assert any("# not a heading" in c.text for c in chunks)


def test_heading_only_sections_make_no_chunk() -> None:
    chunks = split(load_document("h.md", b"# Title\n\n## Part\n\nReal content here.\n"))
    assert [c.headings for c in chunks] == [("Title", "Part")]


def test_ids_are_stable_and_unique_even_for_repeated_text() -> None:
    data = ("## A\n\nSame paragraph.\n\n" * 3).encode()
    first = split(load_document("r.md", data))
    second = split(load_document("r.md", data))
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first) == 3
    other_file = split(load_document("s.md", data))
    assert not {c.id for c in first} & {c.id for c in other_file}


def test_pdf_chunks_know_their_page() -> None:
    from tests.pdfgen import make_pdf

    doc = load_document("p.pdf", make_pdf(["alpha " * 30, "beta " * 30]))
    chunks = split(doc, size=100, overlap=0)
    assert {c.page for c in chunks if "alpha" in c.text} == {1}
    assert {c.page for c in chunks if "beta" in c.text} == {2}


def test_a_heading_split_off_a_long_paragraph_is_not_a_chunk() -> None:
    text = "# Title\n\n" + "A long first paragraph without breaks. " * 10
    chunks = split(load_document("t.md", text.encode()), size=200, overlap=0)
    assert chunks and all(c.text.strip() != "# Title" for c in chunks)
    assert all(c.headings == ("Title",) for c in chunks)

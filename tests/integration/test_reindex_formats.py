"""A folder of Word, PowerPoint and Excel files, a GBK text and a Big5 page, reindexed with the
real embedder and real Chroma, then searched in Chinese."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.reindex import ReindexReport, reindex
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.index_state import IndexState
from rag_service.serving import SearchService
from rag_service.settings import Settings

pytestmark = pytest.mark.integration


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("年假制度", level=1)
    document.add_paragraph("员工每年享有十五天带薪年假，未休完的年假可以顺延到次年三月。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_bytes() -> bytes:
    import pptx

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "火星探测计划"
    slide.placeholders[1].text = "探测车将在乌托邦平原着陆，采集土壤样本并寻找水冰。"
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def xlsx_bytes() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "水果库存"
    for row in (["水果", "库存"], ["榴莲", 42], ["山竹", 17]):
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_folder(root: Path) -> None:
    root.mkdir()
    (root / "handbook.docx").write_bytes(docx_bytes())
    (root / "mars.pptx").write_bytes(pptx_bytes())
    (root / "stock.xlsx").write_bytes(xlsx_bytes())
    (root / "tea.txt").write_bytes(
        "乌龙茶属于半发酵茶，冲泡时水温宜在九十五度左右，第一泡用于醒茶。".encode("gbk")
    )
    (root / "market.txt").write_bytes(
        "臺灣的夜市以小吃聞名，士林夜市是臺北規模最大的夜市之一，每晚遊客眾多。".encode("big5")
    )
    page = (
        '<html><head><meta charset="big5"><title>高鐵時刻</title></head><body>'
        "<h1>台北到高雄</h1><p>高速鐵路從台北到左營最快只需要九十四分鐘。</p></body></html>"
    )
    (root / "rail.html").write_bytes(page.encode("big5"))


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
) -> tuple[Settings, ReindexReport]:
    root = tmp_path_factory.mktemp("formats")
    make_folder(root / "docs")
    settings = Settings(_env_file=None, data_dir=root / "data", corpus_dir=root / "docs")
    return settings, reindex(settings, embedder=real_embedder)


def test_every_file_is_indexed(indexed: tuple[Settings, ReindexReport]) -> None:
    _, report = indexed
    assert report.failed == ()
    assert sorted(report.added) == [
        "handbook.docx",
        "market.txt",
        "mars.pptx",
        "rail.html",
        "stock.xlsx",
        "tea.txt",
    ]


def test_the_encoding_each_file_was_read_in_is_recorded(
    indexed: tuple[Settings, ReindexReport],
) -> None:
    settings, _ = indexed
    state = IndexState(settings.data_dir)
    pointer = state.current()
    assert pointer is not None
    encodings = {path: entry.encoding for path, entry in state.manifest(pointer).items()}
    assert encodings == {
        "handbook.docx": None,
        "market.txt": "cp950",
        "mars.pptx": None,
        "rail.html": "cp950",
        "stock.xlsx": None,
        "tea.txt": "gb18030",
    }


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("年假没休完可以顺延吗", "handbook.docx"),
        ("探测车在哪里着陆", "mars.pptx"),
        ("榴莲还有多少库存", "stock.xlsx"),
        ("乌龙茶的冲泡水温", "tea.txt"),
        ("高鐵從台北到左營要多久", "rail.html"),
        ("士林夜市在哪個城市", "market.txt"),
    ],
)
def test_a_chinese_question_finds_the_one_file_that_answers_it(
    indexed: tuple[Settings, ReindexReport],
    real_embedder: SentenceTransformerEmbedder,
    question: str,
    source: str,
) -> None:
    settings, _ = indexed
    service = SearchService(settings, real_embedder)
    try:
        hits = service.search(question, 3).passages
    finally:
        service.close()
    assert hits[0].chunk.source == source

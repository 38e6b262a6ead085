"""The semantic splitter with the real embedder: chunks end where the subject changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.load import load_document
from ingest.reindex import reindex
from ingest.split import Splitter
from rag_service.embedders.sentence_transformers import SentenceTransformerEmbedder
from rag_service.errors import ConfigError
from rag_service.index_state import IndexState
from rag_service.serving import SearchService
from rag_service.settings import ChunkingSettings, EmbedderSettings, Settings

pytestmark = pytest.mark.integration

WALL = [
    "The Great Wall of China was built over many centuries.",
    "Its walls stretch across the mountains of northern China.",
    "Soldiers guarded the wall's watchtowers against raids from the north.",
    "Much of the wall that stands today dates from the Ming dynasty.",
]
LEAVES = [
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "Plants carry it out in the chloroplasts of their leaves.",
    "Chlorophyll absorbs red and blue light and reflects green.",
    "Oxygen is released as a by-product of photosynthesis.",
]
# MiniLM's cosine of neighbouring sentences here: 0.30 to 0.56 within a subject, -0.06 across.
THRESHOLD = 0.2


def semantic(
    embedder: SentenceTransformerEmbedder, size: int = 1000, threshold: float = THRESHOLD
) -> Splitter:
    settings = ChunkingSettings(
        splitter="semantic", semantic_threshold=threshold, chunk_size=size, chunk_overlap=0
    )
    return Splitter(settings, embedder)


def test_a_change_of_subject_ends_the_chunk(real_embedder: SentenceTransformerEmbedder) -> None:
    doc = load_document("nature.txt", " ".join(WALL + LEAVES).encode())
    chunks = semantic(real_embedder).split(doc)
    assert [c.text for c in chunks] == [" ".join(WALL), " ".join(LEAVES)]
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
    # The recursive splitter, with the same size, keeps both subjects in one chunk.
    recursive = Splitter(ChunkingSettings(chunk_size=1000)).split(doc)
    assert len(recursive) == 1


def test_chunks_stay_within_the_size_and_lose_no_sentence(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    long_sentence = "word " * 90 + "end."  # 454 characters without a sentence break
    text = " ".join(WALL) + " " + long_sentence + " " + " ".join(LEAVES)
    doc = load_document("mixed.txt", text.encode())
    chunks = semantic(real_embedder, size=130, threshold=-1.0).split(doc)
    assert all(len(c.text) <= 130 for c in chunks)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
    # No overlap, nothing dropped: the chunks, in order, are the text without its spaces.
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
    # Every sentence that fits in a chunk is whole in one of them.
    for sentence in WALL + LEAVES:
        assert any(sentence in c.text for c in chunks)


def test_markdown_headings_still_bound_the_chunks(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    text = "# Notes\n\n## Wall\n\n" + " ".join(WALL) + "\n\n## Leaves\n\n" + " ".join(LEAVES)
    chunks = semantic(real_embedder, threshold=-1.0).split(load_document("n.md", text.encode()))
    assert [(c.headings, c.text) for c in chunks] == [
        (("Notes", "Wall"), "## Wall\n\n" + " ".join(WALL)),  # as the recursive splitter does
        (("Notes", "Leaves"), "## Leaves\n\n" + " ".join(LEAVES)),
    ]


def test_chinese_sentences_are_split_on_their_own_punctuation(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    text = "长城修建了许多个世纪。它的城墙横跨中国北方的群山。士兵在长城的烽火台上防御北方的袭击。"
    chunks = semantic(real_embedder, threshold=1.0).split(load_document("zh.txt", text.encode()))
    assert [c.text for c in chunks] == [
        "长城修建了许多个世纪。",
        "它的城墙横跨中国北方的群山。",
        "士兵在长城的烽火台上防御北方的袭击。",
    ]


def test_the_semantic_splitter_needs_an_embedder() -> None:
    with pytest.raises(ConfigError, match="needs the embedder"):
        Splitter(ChunkingSettings(splitter="semantic"))


def test_reindex_with_the_semantic_splitter_rebuilds_and_serves(
    make_settings: Callable[..., Settings],
    real_embedder: SentenceTransformerEmbedder,
    docs: Path,
) -> None:
    (docs / "nature.txt").write_text(" ".join(WALL + LEAVES), encoding="utf-8")
    recursive = make_settings()
    reindex(recursive, embedder=real_embedder)
    chunking = ChunkingSettings(splitter="semantic", semantic_threshold=THRESHOLD)
    settings = make_settings(chunking=chunking)
    report = reindex(settings, embedder=real_embedder)
    assert report.full_rebuild  # the splitter is part of the index fingerprint
    pointer = IndexState(settings.data_dir).current()
    assert pointer is not None
    assert len(IndexState(settings.data_dir).manifest(pointer)["nature.txt"].chunk_ids) == 2
    service = SearchService(settings, real_embedder)
    try:
        best = service.search("Which pigment absorbs red and blue light?", 1).passages[0]
    finally:
        service.close()
    assert best.chunk.text == " ".join(LEAVES)
    assert not reindex(settings, embedder=real_embedder).full_rebuild


def test_an_embedder_that_cannot_load_stops_the_run_instead_of_failing_each_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        chunking=ChunkingSettings(splitter="semantic"),
        embedder=EmbedderSettings(
            backend="sentence-transformers", model=str(tmp_path / "no-such-model")
        ),
    )
    with pytest.raises(ConfigError, match="cannot load embedding model"):
        reindex(settings)
    assert IndexState(settings.data_dir).current() is None

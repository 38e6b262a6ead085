"""Hybrid retrieval end to end, in the style of Haystack's hybrid-pipeline test: the real MiniLM
embedder, a real Chroma, a handful of passages, and assertions on what ranks first."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.reindex import reindex
from rag_cli.commands import app
from rag_service.index_state import IndexState
from rag_service.rerankers.fake import FakeReranker
from rag_service.retrieval.bm25 import TokenCache
from rag_service.retrieval.results import SearchFilters
from rag_service.serving import SearchService
from rag_service.settings import Settings
from tests.conftest import DATA, CountingEmbedder

pytestmark = pytest.mark.integration

PASSAGES = {
    "llama.md": "# Llamas\n\nLlamas are domesticated South American camelids.\n",
    "errors.md": "# Error codes\n\nError E4021 means the disk quota was exceeded.\n",
    "paris.md": "# Paris\n\nParis is the capital and most populous city of France.\n",
    "向量.md": "# 向量数据库\n\n向量数据库按余弦相似度检索最相近的片段，常用的近似最近邻算法是HNSW。\n",
    "专家.md": "# 混合专家\n\n混合专家模型用门控网络为每个词元选择少数几个专家。\n",
}


def indexed_passages(tmp_path: Path, embedder: CountingEmbedder) -> Settings:
    """The five passages, indexed; the settings that point at them."""
    docs = tmp_path / "passages"
    docs.mkdir()
    for name, text in PASSAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", corpus_dir=docs)  # type: ignore[call-arg]
    reindex(settings, embedder=embedder)
    return settings


@pytest.fixture
def service(tmp_path: Path, embedder: CountingEmbedder) -> Iterator[SearchService]:
    service = SearchService(indexed_passages(tmp_path, embedder), embedder)
    yield service
    service.close()


def test_only_dense_finds_a_paraphrase(service: SearchService) -> None:
    # No word in common with the passage, so BM25 cannot see it; the embedder can.
    top = service.search("Which pack animals come from the Andes?", 3).passages[0]
    assert top.chunk.source == "llama.md"
    assert top.bm25_rank is None and top.dense_rank == 1


def test_only_bm25_finds_an_exact_code(service: SearchService) -> None:
    top = service.search("E4021", 3).passages[0]
    assert top.chunk.source == "errors.md" and top.bm25_rank == 1


def test_chinese_question_is_answered_through_bm25(service: SearchService) -> None:
    result = service.search("混合專家模型怎樣選擇專家？", 3)  # Traditional script
    assert result.language == "zh"
    assert result.passages[0].chunk.source == "专家.md"
    assert result.passages[0].bm25_rank == 1


def test_both_lists_agree_on_an_easy_question(service: SearchService) -> None:
    top = service.search("What is the capital of France?", 3).passages[0]
    assert top.chunk.source == "paris.md"
    assert top.bm25_rank == 1 and top.dense_rank == 1


def test_filters_restrict_sources(service: SearchService) -> None:
    filters = SearchFilters(source_prefix="向")
    passages = service.search("capital of France", 5, filters).passages
    assert [p.chunk.source for p in passages] == ["向量.md"]


def test_reindex_tokenises_only_new_chunks_and_switching_bm25_backend_rebuilds(
    make_settings: Callable[..., Settings], embedder: CountingEmbedder, docs: Path
) -> None:
    settings = make_settings()
    reindex(settings, embedder=embedder)
    state = IndexState(settings.data_dir)
    pointer = state.current()
    assert pointer is not None
    assert state.bm25_path(pointer.collection, 1, "bm25s").is_dir()
    cache = TokenCache(state.token_cache_path)
    ids = [cid for e in state.manifest(pointer).values() for cid in e.chunk_ids]
    assert set(cache.get_many(ids)) == set(ids)
    cache.close()

    other = make_settings(retrieval={"bm25_backend": "rank-bm25"})
    report = reindex(other, embedder=embedder)
    assert report.generation is None  # no new generation, just the other BM25 index
    assert state.bm25_path(pointer.collection, 1, "rank-bm25").is_dir()
    service = SearchService(other, embedder)
    try:
        assert (
            service.search("BM25 saturation parameter k1", 1).passages[0].chunk.source
            == "guides/bm25.txt"
        )
    finally:
        service.close()


def test_eval_command_scores_every_system(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(DATA / "evalset"),
            "--baselines",
            "--json",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dataset"] == "evalset" and report["questions"] == 5
    assert set(report["systems"]) == {"ours", "bm25", "dense", "langchain_ensemble"}
    for metrics in report["systems"].values():
        assert set(metrics) == {
            "recall@1",
            "recall@5",
            "recall@10",
            "mrr@10",
            "ndcg@10",
            "p50_ms",
            "p95_ms",
        }
        assert (
            0 <= metrics["ndcg@10"] <= 1
            and metrics["recall@10"] >= metrics["recall@5"] >= metrics["recall@1"]
        )
    assert report["systems"]["ours"]["recall@1"] == 1.0
    # LangChain's whitespace BM25 and MiniLM cannot both rescue the Chinese questions.
    assert (
        report["systems"]["langchain_ensemble"]["ndcg@10"] <= report["systems"]["ours"]["ndcg@10"]
    )


def test_chinese_queries_are_boosted_by_character_pairs(service: SearchService) -> None:
    zh = service.search("门控网络怎样选择专家？", 5).passages
    # 门控 控网 网络 选择 专家 of 9 pairs (络怎 怎样 样选 择专 are not in it)
    assert zh[0].chunk.source == "专家.md" and zh[0].bigram_share == 5 / 9
    for passage in zh:  # the boost is added to the fused score, with weight 1.0
        assert passage.bigram_share is not None
        assert passage.score == pytest.approx(passage.fused_score + passage.bigram_share)
    assert [p.score for p in zh] == sorted((p.score for p in zh), reverse=True)
    # English queries are not boosted: their score is the fused score.
    en = service.search("What is the capital of France?", 3).passages
    assert all(p.bigram_share is None and p.score == p.fused_score for p in en)


def test_the_bigram_boost_can_be_turned_off(
    tmp_path: Path, service: SearchService, embedder: CountingEmbedder
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path / "data", retrieval={"bigram_weight_zh": 0}
    )
    plain = SearchService(settings, embedder)
    try:
        zh = plain.search("门控网络怎样选择专家？", 5).passages
    finally:
        plain.close()
    assert zh[0].chunk.source == "专家.md"
    assert all(p.bigram_share is None and p.score == p.fused_score for p in zh)


def test_the_reranker_reorders_the_whole_shortlist(
    tmp_path: Path, embedder: CountingEmbedder
) -> None:
    """The fake reranker prefers shorter passages: the shortest of all five comes first even
    for a question it has nothing to do with, so it was given the shortlist, not the top 2."""
    settings = indexed_passages(tmp_path, embedder)
    reranker = FakeReranker()
    service, plain_service = (
        SearchService(settings, embedder, reranker),
        SearchService(settings, embedder),
    )
    try:
        plain = plain_service.search("What is the capital of France?", 5)
        result = service.search("What is the capital of France?", 2)
    finally:
        service.close()
        plain_service.close()
    assert reranker.queries == ["What is the capital of France?"]
    shortest = min(plain.passages, key=lambda p: len(p.chunk.text))
    first, second = result.passages
    assert first.chunk.id == shortest.chunk.id != plain.passages[0].chunk.id
    assert first.score == first.rerank_score == 1 / (1 + len(first.chunk.text))
    assert first.rerank_score > second.rerank_score  # type: ignore[operator]
    by_id = {p.chunk.id: p for p in plain.passages}
    assert first.fused_score == by_id[first.chunk.id].fused_score  # the detail keeps the fusion

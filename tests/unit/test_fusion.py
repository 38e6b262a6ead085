from __future__ import annotations

import pytest

from rag_service.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from rag_service.types import ScoredId

pytestmark = pytest.mark.unit


def ids(*names: str) -> list[ScoredId]:
    return [ScoredId(n, 1.0 / (i + 1)) for i, n in enumerate(names)]


def test_rrf_rewards_agreement_between_lists() -> None:
    fused = reciprocal_rank_fusion([ids("a", "b", "c"), ids("b", "d", "a")], [1.0, 1.0], k=60)
    assert [h.chunk_id for h in fused] == ["b", "a", "d", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)


def test_rrf_weights_and_zero_weight() -> None:
    lists = [ids("a", "b"), ids("b", "a")]
    assert reciprocal_rank_fusion(lists, [1.0, 2.0])[0].chunk_id == "b"
    assert [h.chunk_id for h in reciprocal_rank_fusion(lists, [1.0, 0.0])] == ["a", "b"]


def test_score_fusion_normalises_each_list() -> None:
    bm25 = [ScoredId("a", 30.0), ScoredId("b", 10.0), ScoredId("c", 0.0)]
    dense = [ScoredId("c", 0.9), ScoredId("b", 0.8), ScoredId("a", 0.1)]
    fused = {h.chunk_id: h.score for h in weighted_score_fusion([bm25, dense], [1.0, 1.0])}
    assert fused["a"] == pytest.approx(1.0 + 0.0)
    assert fused["b"] == pytest.approx(1 / 3 + 0.875)
    assert fused["c"] == pytest.approx(0.0 + 1.0)
    assert weighted_score_fusion([[ScoredId("x", 5.0)], []], [1.0, 1.0]) == [ScoredId("x", 1.0)]


def test_one_weight_per_list() -> None:
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([ids("a")], [1.0, 1.0])
    with pytest.raises(ValueError):
        weighted_score_fusion([ids("a")], [])

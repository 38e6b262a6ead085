from __future__ import annotations

import pytest

from rag_service.retrieval.fusion import reciprocal_rank_fusion, weighted_score_fusion
from rag_service.retrieval.hybrid import fusion_weights
from rag_service.retrieval.language import passage_language
from rag_service.settings import RetrievalSettings
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


def test_the_pair_of_languages_picks_the_weights() -> None:
    s = RetrievalSettings(
        bm25_weight_en=1.0,
        dense_weight_en=1.5,
        bm25_weight_zh=1.0,
        dense_weight_zh=2.0,
        bm25_weight_cross=0.1,
        dense_weight_cross=1.0,
    )
    assert fusion_weights(s, "en", "en") == (1.0, 1.5)
    assert fusion_weights(s, "zh", "zh") == (1.0, 2.0)
    assert fusion_weights(s, "en", "zh") == fusion_weights(s, "zh", "en") == (0.1, 1.0)
    # Passages not looked at (depth 0, or no dense hit): the query's language alone, as before.
    assert fusion_weights(s, "en", None) == (1.0, 1.5)
    assert fusion_weights(s, "zh", None) == (1.0, 2.0)


def test_the_passages_language_is_the_majority_of_the_top_hits() -> None:
    assert passage_language(["zh", "zh", "en"]) == "zh"
    assert passage_language(["en", "zh", "zh"]) == "zh"
    assert passage_language(["en", "zh"]) == "en"  # a tie: the best-ranked passage's
    assert passage_language([]) is None

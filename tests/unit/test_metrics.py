from __future__ import annotations

import math

import pytest

from evaluation.metrics import (
    dedupe,
    mrr_at,
    ndcg_at,
    percentile,
    recall_at,
    summarise,
)

pytestmark = pytest.mark.unit


def test_dedupe_keeps_first_occurrence_order() -> None:
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_recall_mrr_ndcg() -> None:
    ranked, gold = ["x", "g1", "y", "g2"], {"g1", "g2"}
    assert recall_at(ranked, gold, 1) == 0.0
    assert recall_at(ranked, gold, 2) == 0.5
    assert recall_at(ranked, gold, 4) == 1.0
    assert mrr_at(ranked, gold) == 0.5
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(ranked, gold) == pytest.approx(expected)
    assert ndcg_at(["g1", "g2"], gold) == 1.0
    assert mrr_at(["x"] * 10 + ["g1"], gold) == 0.0  # beyond rank 10


def test_percentile_and_summary() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(range(1, 101)), 95) == 95
    result = summarise([["g"], ["x", "g"]], [{"g"}, {"g"}], [1.0, 3.0])
    assert result["recall@1"] == 0.5 and result["mrr@10"] == 0.75
    assert result["p50_ms"] == 1.0 and result["p95_ms"] == 3.0

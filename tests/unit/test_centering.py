"""Query centering: exact arithmetic on small vectors, and which models have means."""

from __future__ import annotations

import numpy as np
import pytest

from rag_service.retrieval.centering import QueryCentering, centering_for, load_query_means
from rag_service.settings import DEFAULT_EMBEDDING_MODEL, E5_BUNDLED_MODEL

pytestmark = pytest.mark.unit


def test_the_language_mean_is_subtracted_and_the_result_renormalised() -> None:
    centering = QueryCentering(
        {"zh": np.array([0.0, 0.6, 0.0], dtype=np.float32)}, {"zh": 0.5, "en": 0.5}
    )
    query = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    shifted = centering.apply(query, "zh")  # (0.6, 0.8 - 0.3, 0) = (0.6, 0.5, 0), normalised
    assert np.allclose(shifted, np.array([0.6, 0.5, 0.0]) / np.hypot(0.6, 0.5))
    assert centering.apply(query, "en") is query  # no mean for English: unchanged


def test_centering_penalises_passages_near_the_average_query() -> None:
    mean = np.array([0.0, 1.0], dtype=np.float32)
    query = np.array([0.6, 0.8], dtype=np.float32)
    near_mean, off_mean = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    assert query @ near_mean > query @ off_mean
    shifted = QueryCentering({"zh": mean}, {"zh": 1.0}).apply(query, "zh")
    assert shifted @ off_mean > shifted @ near_mean


def test_only_models_with_shipped_means_are_centered() -> None:
    assert centering_for(DEFAULT_EMBEDDING_MODEL, {"zh": 0.5}) is None
    assert centering_for(E5_BUNDLED_MODEL, {"en": 0.0, "zh": 0.0}) is None
    means = load_query_means(E5_BUNDLED_MODEL)
    assert means is not None and set(means) == {"en", "zh"}
    assert all(v.shape == (384,) for v in means.values())

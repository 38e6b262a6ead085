"""Query centering: the query's vector minus a share of the mean vector of queries in its
language, before the dense search.

A multilingual embedder puts a Chinese question nearer to Chinese passages than to the English
passage that answers it: every Chinese query shares a direction, and so do the passages that
resemble the average query. Subtracting the mean query of the language removes that shared part
(and with it some hubness: passages near every query); for a unit query q and mean m, ranking by
cos(q - s*m, d) penalises each passage d by s * m.d. With multilingual-e5-small it lifted
Chinese questions over English documents (xquad_zh2en) from 0.815 to the figures in
docs/retrieval.md. The means are a property of the embedder, computed once from development-set
questions by ``bench/query_means.py`` and shipped in ``query_means/``; an embedder without a
file is searched uncentered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag_service.protocols import Vectors

MEANS_DIR = Path(__file__).parent / "query_means"


def means_path(model_id: str) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in model_id).strip("-")
    return MEANS_DIR / f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}.json"


def load_query_means(model_id: str) -> dict[str, Vectors] | None:
    path = means_path(model_id)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return {lang: np.asarray(v, dtype=np.float32) for lang, v in data["means"].items()}


@dataclass(frozen=True)
class QueryCentering:
    means: Mapping[str, Vectors]  # language -> mean of unit query vectors
    strengths: Mapping[str, float]  # language -> share of the mean subtracted; 0: off

    def apply(self, vector: Vectors, language: str) -> Vectors:
        mean, strength = self.means.get(language), self.strengths.get(language, 0.0)
        if mean is None or not strength:
            return vector
        shifted = vector - strength * mean
        norm = float(np.linalg.norm(shifted))
        result: Vectors = (shifted / norm if norm > 0 else vector).astype(np.float32)
        return result


def centering_for(model_id: str, strengths: Mapping[str, float]) -> QueryCentering | None:
    """The embedder's centering, or None (off in every language, or no means for the model)."""
    if not any(strengths.values()):
        return None
    means = load_query_means(model_id)
    return QueryCentering(means, dict(strengths)) if means else None

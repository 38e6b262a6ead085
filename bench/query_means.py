"""The mean query vector per language for the configured embedder: what query centering
(rag_service/retrieval/centering.py) subtracts.

    RAG_EMBEDDER__BACKEND=e5 .venv/bin/python bench/query_means.py \
        ../shared/eval/cmrc2018_dev ../shared/eval/rgb_zh_int ../shared/eval/scifact_train

Questions are embedded as queries (through the shared eval cache) and averaged by language.
The shipped means come from CMRC 2018, RGB and SciFact only, so the XQuAD sets, and above all
xquad_zh2en, measure centering on questions it never saw. Writes the file under
rag_service/retrieval/query_means/ that the service loads for this embedder's model id.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import REPO

from evaluation.datasets import load_eval_set
from evaluation.runner import cached_embedder
from rag_service.retrieval.centering import means_path
from rag_service.retrieval.language import query_language
from rag_service.settings import Settings


def main(dirs: list[Path]) -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    embedder = cached_embedder(settings.embedder, cache)
    vectors: dict[str, list[np.ndarray]] = {}
    sources: dict[str, list[str]] = {}
    try:
        for directory in dirs:
            with tempfile.TemporaryDirectory() as tmp:
                eval_set = load_eval_set(directory, Path(tmp))
            for q in eval_set.questions:
                lang = query_language(q.question)
                vectors.setdefault(lang, []).append(embedder.embed_query(q.question))
                if eval_set.name not in sources.setdefault(lang, []):
                    sources[lang].append(eval_set.name)
    finally:
        embedder.close()
    means = {lang: np.mean(np.stack(v), axis=0).round(6).tolist() for lang, v in vectors.items()}
    out = means_path(settings.embedder.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {lang: len(v) for lang, v in vectors.items()}
    out.write_text(
        json.dumps(
            {"model": settings.embedder.model, "questions": counts, "sets": sources, "means": means}
        )
        + "\n"
    )
    print(f"{out.relative_to(REPO)}: {counts} questions from {sources}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])

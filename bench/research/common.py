"""Shared by the research scripts: the dumps of bench/research/dump.py, and scoring a ranking."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import dedupe, ndcg_at, recall_at
from rag_service.retrieval.fusion import weighted_score_fusion
from rag_service.settings import RetrievalSettings
from rag_service.types import ScoredId

REPO = Path(__file__).resolve().parents[2]

DUMPS = Path("/tmp/rag-research")
SETS = ["xquad_en", "scifact_train", "xquad_zh", "cmrc2018_dev", "rgb_zh_int", "corpus"]
_SHIPPED = RetrievalSettings()
WEIGHTS = {  # the shipped defaults (bm25, dense)
    "en": (_SHIPPED.bm25_weight_en, _SHIPPED.dense_weight_en),
    "zh": (_SHIPPED.bm25_weight_zh, _SHIPPED.dense_weight_zh),
}

Ranker = Callable[[dict[str, Any], dict[str, Any]], Sequence[str]]  # (question, set) -> chunk ids


@cache
def load(name: str) -> dict[str, Any]:
    with (DUMPS / f"{name}.pkl").open("rb") as fh:
        data: dict[str, Any] = pickle.load(fh)
    for q in data["questions"]:
        q["gold_set"] = set(q["gold"])
    return data


def cosine(q: dict[str, Any], data: dict[str, Any], cid: str) -> float:
    return float(np.dot(q["qvec"], data["chunks"][cid]["vec"]))


def score(data: dict[str, Any], ranker: Ranker) -> dict[str, float]:
    """Mean nDCG@10 and Recall@5 (documents, first occurrence) over a set's questions, also per
    language of the question."""
    sums: dict[str, list[float]] = {}
    chunks = data["chunks"]
    for q in data["questions"]:
        ranked = dedupe(chunks[cid]["source"] for cid in ranker(q, data))[:10]
        n, r = ndcg_at(ranked, q["gold_set"]), recall_at(ranked, q["gold_set"], 5)
        for key in ("all", q["lang"]):
            acc = sums.setdefault(key, [0.0, 0.0, 0])
            acc[0] += n
            acc[1] += r
            acc[2] += 1
    out = {"ndcg@10": sums["all"][0] / sums["all"][2], "recall@5": sums["all"][1] / sums["all"][2]}
    for lang in ("en", "zh"):
        if lang in sums and sums[lang][2] != sums["all"][2]:
            out[f"{lang}:ndcg@10"] = sums[lang][0] / sums[lang][2]
            out[f"{lang}:recall@5"] = sums[lang][1] / sums[lang][2]
            out[f"{lang}:questions"] = sums[lang][2]
    return out


def bm25_only(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
    return [cid for cid, _ in q["bm25"]]


def dense_only(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
    return [cid for cid, _ in q["dense"]]


def ours(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
    lists = [[ScoredId(c, s) for c, s in q[k]] for k in ("bm25", "dense")]
    return [h.chunk_id for h in weighted_score_fusion(lists, WEIGHTS[q["lang"]])]


BASELINES: dict[str, Ranker] = {"ours": ours, "bm25": bm25_only, "dense": dense_only}


def baselines(names: Sequence[str] = SETS) -> dict[str, dict[str, dict[str, float]]]:
    return {name: {k: score(load(name), r) for k, r in BASELINES.items()} for name in names}


def verdict(result: dict[str, float], base: dict[str, dict[str, float]]) -> dict[str, float]:
    """Deltas against ours and against the best of BM25-only and dense-only, per metric."""
    out = {}
    for metric in ("ndcg@10", "recall@5"):
        best = max(base["bm25"][metric], base["dense"][metric])
        out[f"d_ours:{metric}"] = result[metric] - base["ours"][metric]
        out[f"d_best:{metric}"] = result[metric] - best
    return out


def table(
    rows: dict[str, dict[str, dict[str, float]]],
    base: dict[str, dict[str, dict[str, float]]],
    sets: Sequence[str] = SETS,
) -> str:
    """One line per approach: per set nDCG@10 / Recall@5 and the worst margin to the best
    baseline (negative: fails the acceptance rule somewhere)."""
    lines = []
    header = f"{'approach':<34}" + "".join(f"{s[:12]:>22}" for s in sets) + "   worst-vs-best"
    lines.append(header)
    for name, per_set in rows.items():
        cells, worst = [], 1.0
        for s in sets:
            r = per_set[s]
            v = verdict(r, base[s])
            worst = min(worst, v["d_best:ndcg@10"], v["d_best:recall@5"])
            cells.append(f"{r['ndcg@10']:.4f}/{r['recall@5']:.4f}")
        lines.append(f"{name:<34}" + "".join(f"{c:>22}" for c in cells) + f"   {worst:+.4f}")
    return "\n".join(lines)

"""Fusion variants that need no learning, scored offline on the dumped candidate lists.

    python bench/research/dump.py <set dirs...>     # once
    python bench/research/fusion.py                 # writes bench/results/research-fusion.json

Every variant ranks the union of the BM25 and dense top-50 lists. Each has one free parameter
per language (the dense weight, or a floor); it is chosen per language on the development sets
of that language (as bench/tune_fusion.py does) and, to show whether the choice generalises,
also leave-one-set-out: chosen on the other sets and scored on the held-out one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from common import REPO, SETS, baselines, load, score, table, verdict
from features import arrays, minmax_in_list

Variant = Callable[[dict[str, Any], float], np.ndarray]  # (arrays, parameter) -> fused scores


def _mm_b(a: dict[str, Any]) -> np.ndarray:
    return minmax_in_list(a["b"], a["in_b"], a["b_list"])


def _mm_d(a: dict[str, Any]) -> np.ndarray:
    return minmax_in_list(a["d"], a["in_d"], a["d_list"])


def _z(values: np.ndarray, listed: np.ndarray) -> np.ndarray:
    if listed.size < 2 or listed.std() == 0:
        return np.zeros_like(values)
    return (values - listed.mean()) / listed.std()


def _overlap10(a: dict[str, Any]) -> float:
    top_b = set(np.argsort(a["b_rank"])[:10][a["b_rank"][np.argsort(a["b_rank"])[:10]] <= 10])
    top_d = set(np.argsort(a["d_rank"])[:10][a["d_rank"][np.argsort(a["d_rank"])[:10]] <= 10])
    return len(top_b & top_d) / 10


def minmax(a: dict[str, Any], w: float) -> np.ndarray:
    """The shipped fusion: each list min-max scaled to 0..1 (absent: 0), dense weight w."""
    return _mm_b(a) + w * _mm_d(a)


def zscore(a: dict[str, Any], w: float) -> np.ndarray:
    """Each list z-scored with its own mean and deviation; absent candidates get their exact
    score z-scored the same way (below the list's lowest, so negative)."""
    return _z(a["b"], a["b_list"]) + w * _z(a["d"], a["d_list"])


def mm_bm25_raw_cos(a: dict[str, Any], w: float) -> np.ndarray:
    """BM25 min-max as shipped, dense as the raw cosine (exact for every candidate)."""
    return _mm_b(a) + w * a["d"]


def bm25max_raw_cos(a: dict[str, Any], w: float) -> np.ndarray:
    """BM25 divided by the query's highest possible score ((k1+1) * sum of its tokens' idf),
    plus w times the raw cosine: both absolute, nothing stretched per list."""
    return a["b"] / max(a["bm25_max"], 1e-9) + w * a["d"]


def bm25top_raw_cos(a: dict[str, Any], w: float) -> np.ndarray:
    """BM25 divided by its top score (min-max with the minimum fixed at 0), plus w * cosine."""
    top = a["b_list"][0] if a["b_list"].size else 1.0
    return a["b"] / max(top, 1e-9) + w * a["d"]


def mm_span_floor(floor: float) -> Variant:
    """Min-max, but the dense span is at least `floor`: a flat (noise) dense list is not
    stretched to 0..1. Dense weight w."""

    def variant(a: dict[str, Any], w: float) -> np.ndarray:
        d = a["d_list"]
        if d.size == 0:
            return _mm_b(a)
        span = max(d.max() - d.min(), floor)
        dense = np.where(a["in_d"], (a["d"] - d.min()) / span, 0.0)
        return _mm_b(a) + w * dense

    return variant


def mm_overlap(a: dict[str, Any], w: float) -> np.ndarray:
    """Dense weight w scaled by how many of BM25's top 10 the dense top 10 holds (0..1)."""
    return _mm_b(a) + w * _overlap10(a) * _mm_d(a)


def mm_known(a: dict[str, Any], w: float) -> np.ndarray:
    """Dense weight w scaled by the share of the query's pieces MiniLM does not map to [UNK]."""
    return _mm_b(a) + w * a["known"] * _mm_d(a)


def mm_gap(a: dict[str, Any], w: float) -> np.ndarray:
    """Dense weight w scaled by the dense list's top1 - top10 cosine gap over 0.3 (capped 1)."""
    d = a["d_list"]
    gap = (d[0] - d[min(9, d.size - 1)]) / 0.3 if d.size else 0.0
    return _mm_b(a) + w * min(gap, 1.0) * _mm_d(a)


def mm_bm25_pool(a: dict[str, Any], w: float) -> np.ndarray:
    """Dense only reorders BM25's candidates (dense-only candidates get -inf unless BM25 found
    nothing)."""
    fused = _mm_b(a) + w * _mm_d(a)
    if not a["in_b"].any():
        return fused
    return np.where(a["in_b"], fused, -np.inf)


GRID = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
VARIANTS: dict[str, tuple[Variant, list[float]]] = {
    "minmax (shipped family)": (minmax, GRID),
    "zscore": (zscore, GRID),
    "mm bm25 + raw cosine": (mm_bm25_raw_cos, [0.0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8]),
    "bm25/max + raw cosine": (bm25max_raw_cos, [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3]),
    "bm25/top1 + raw cosine": (bm25top_raw_cos, [0.0, 0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8]),
    "mm dense span floor 0.2": (mm_span_floor(0.2), GRID),
    "mm dense span floor 0.3": (mm_span_floor(0.3), GRID),
    "mm dense x overlap@10": (mm_overlap, GRID),
    "mm dense x known share": (mm_known, GRID),
    "mm dense x gap": (mm_gap, GRID),
    "mm, dense reorders bm25 pool": (mm_bm25_pool, GRID),
}
LANG_SETS = {
    "en": ["xquad_en", "scifact_train", "corpus"],
    "zh": ["xquad_zh", "cmrc2018_dev", "rgb_zh_int", "corpus"],
}


def ranker(variant: Variant, params: dict[str, float]) -> Callable[..., list[str]]:
    def rank(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
        a = arrays(q, data)
        a["bm25_max"] = q["bm25_max"]
        fused = variant(a, params[q["lang"]])
        order = np.argsort(-fused, kind="stable")
        return [a["ids"][i] for i in order if np.isfinite(fused[i])]

    return rank


def per_lang_scores(variant: Variant, grid: list[float]) -> dict[tuple[str, str, float], float]:
    """nDCG@10 + Recall@5 of each (set, language, parameter): the selection criterion."""
    out = {}
    for w in grid:
        r = ranker(variant, {"en": w, "zh": w})
        for name in SETS:
            s = score(load(name), r)
            for lang in ("en", "zh"):
                if name not in LANG_SETS[lang]:
                    continue
                if f"{lang}:ndcg@10" in s:
                    out[(name, lang, w)] = s[f"{lang}:ndcg@10"] + s[f"{lang}:recall@5"]
                else:
                    out[(name, lang, w)] = s["ndcg@10"] + s["recall@5"]
    return out


def choose(
    table_: dict[tuple[str, str, float], float], grid: list[float], lang: str, exclude: str | None
) -> float:
    """The parameter with the best mean (nDCG@10 + Recall@5) over the language's sets."""
    sets = [s for s in LANG_SETS[lang] if s != exclude]
    return max(grid, key=lambda w: (np.mean([table_[(s, lang, w)] for s in sets]), -w))


def main() -> None:
    base = baselines()
    rows: dict[str, dict[str, dict[str, float]]] = {
        "ours (shipped)": {s: base[s]["ours"] for s in SETS},
        "bm25 only": {s: base[s]["bm25"] for s in SETS},
    }
    report: dict[str, Any] = {"baselines": base, "variants": {}}
    for name, (variant, grid) in VARIANTS.items():
        tab = per_lang_scores(variant, grid)
        chosen = {lang: choose(tab, grid, lang, None) for lang in ("en", "zh")}
        all_sets = {s: score(load(s), ranker(variant, chosen)) for s in SETS}
        held_out = {}
        for s in SETS:
            params = {lang: choose(tab, grid, lang, s) for lang in ("en", "zh")}
            held_out[s] = {**score(load(s), ranker(variant, params)), "params": params}
        rows[f"{name} [{chosen['en']}/{chosen['zh']}]"] = all_sets
        rows[f"  held-out ({name})"] = held_out
        report["variants"][name] = {
            "chosen": chosen,
            "all_sets": {s: {**r, **verdict(r, base[s])} for s, r in all_sets.items()},
            "leave_one_set_out": {s: {**r, **verdict(r, base[s])} for s, r in held_out.items()},
            "grid": {f"{s}/{lang}/{w}": v for (s, lang, w), v in tab.items()},
        }
        print(table({k: rows[k] for k in list(rows)[-2:]}, base).split("\n", 1)[1], file=sys.stderr)
    print(table(rows, base))
    out = REPO / "bench" / "results" / "research-fusion.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

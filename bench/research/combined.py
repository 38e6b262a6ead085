"""The recommended recipe as a whole, per language of the query, scored offline:

- English: BM25 divided by the query's highest possible BM25 score, plus w_en * raw cosine,
  over the union of both lists (`fill` says what a candidate missing from one list gets).
- Chinese: the shipped min-max fusion (dense 0.2), then its top 20 reranked by
  fused + lam * (share of the query's character bigrams in the chunk).

    python bench/research/dump.py <set dirs...>     # once
    python bench/research/combined.py               # writes bench/results/research-combined.json

w_en and lam are also chosen leave-one-set-out (on the other sets of the language) to show the
choice generalises.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from bigram import bigram_ranker
from common import REPO, SETS, baselines, load, score, table, verdict
from features import arrays

W_EN = [0.25, 0.35, 0.5, 0.75, 1.0]
LAMS = [0.5, 0.7, 1.0, 1.5, 2.0]
EN_SETS = ["xquad_en", "scifact_train", "corpus"]
ZH_SETS = ["xquad_zh", "cmrc2018_dev", "rgb_zh_int", "corpus"]


def en_scores(q: dict[str, Any], data: dict[str, Any], w: float, fill: str) -> tuple[list, Any]:
    a = arrays(q, data)
    b, d = a["b"].copy(), a["d"].copy()
    if fill == "list_min":  # what the service has without extra look-ups
        if a["b_list"].size:
            b = np.where(a["in_b"], b, 0.0)
        if a["d_list"].size:
            d = np.where(a["in_d"], d, a["d_list"].min())
    elif fill == "zero":
        b, d = np.where(a["in_b"], b, 0.0), np.where(a["in_d"], d, 0.0)
    return a["ids"], b / max(q["bm25_max"], 1e-9) + w * d


def combined(w_en: float, lam: float, fill: str = "exact") -> Any:
    zh = bigram_ranker(lam, 20)

    def rank(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
        if q["lang"] == "zh":
            return zh(q, data)  # type: ignore[no-any-return]
        ids, s = en_scores(q, data, w_en, fill)
        return [ids[i] for i in np.argsort(-s, kind="stable")]

    return rank


def lang_value(result: dict[str, float], lang: str) -> float:
    return result.get(f"{lang}:ndcg@10", result["ndcg@10"]) + result.get(
        f"{lang}:recall@5", result["recall@5"]
    )


def main() -> None:
    base = baselines()
    rows: dict[str, dict[str, dict[str, float]]] = {
        "ours (shipped)": {s: base[s]["ours"] for s in SETS},
        "bm25 only": {s: base[s]["bm25"] for s in SETS},
        "dense only": {s: base[s]["dense"] for s in SETS},
    }
    grid: dict[tuple[float, float, str], dict[str, dict[str, float]]] = {}
    for fill in ("exact", "list_min", "zero"):
        for w in W_EN:
            lams = LAMS if fill == "exact" else [1.0]
            for lam in lams:
                grid[(w, lam, fill)] = {s: score(load(s), combined(w, lam, fill)) for s in SETS}
                rows[f"en w={w} zh lam={lam} fill={fill}"] = grid[(w, lam, fill)]
    held: dict[str, dict[str, float]] = {}
    for s in SETS:
        w = max(
            W_EN,
            key=lambda x: np.mean(
                [lang_value(grid[(x, 1.0, "exact")][t], "en") for t in EN_SETS if t != s]
            ),
        )
        lam = max(
            LAMS,
            key=lambda x: np.mean(
                [lang_value(grid[(w, x, "exact")][t], "zh") for t in ZH_SETS if t != s]
            ),
        )
        held[s] = {**grid[(w, lam, "exact")][s], "w_en": w, "lam": lam}
    rows["held-out choice (exact fill)"] = held
    print(table(rows, base))
    print({s: (h["w_en"], h["lam"]) for s, h in held.items()})
    report = {
        "grid": {
            f"w_en={w}/lam={lam}/fill={f}": {s: {**r, **verdict(r, base[s])} for s, r in v.items()}
            for (w, lam, f), v in grid.items()
        },
        "leave_one_set_out": {s: {**r, **verdict(r, base[s])} for s, r in held.items()},
        "baselines": base,
    }
    out = REPO / "bench" / "results" / "research-combined.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

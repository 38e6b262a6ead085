"""The recommended zh reranker, swept: fused score + lam * (share of the query's Chinese character
bigrams found in the chunk), over the shipped fusion's top `depth`, for Chinese queries only.

    python bench/research/dump.py <set dirs...>     # once
    python bench/research/bigram.py                 # writes bench/results/research-bigram.json

No learning beyond the one constant; the sweep shows how flat the choice is, and a paired
bootstrap over questions says how much of each difference to the best baseline is noise.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from common import REPO, SETS, baselines, bm25_only, load, ours, score, table, verdict
from rerank import FEATURES, features

from evaluation.metrics import dedupe, ndcg_at, recall_at

BIGRAM, FUSED = FEATURES.index("bigram"), FEATURES.index("fused")
LAMS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0]


def bigram_ranker(lam: float, depth: int) -> Any:
    def rank(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
        shipped = ours(q, data)
        if q["lang"] != "zh" or lam == 0:
            return shipped
        ids, x = features(q, data, depth)  # the shipped top `depth`, in shipped order
        s = x[:, FUSED] + lam * x[:, BIGRAM]
        head = [ids[i] for i in np.argsort(-s, kind="stable")]
        return head + shipped[len(head) :]

    return rank


def per_question(data: dict[str, Any], rank: Any) -> np.ndarray:
    rows = []
    for q in data["questions"]:
        ranked = dedupe(data["chunks"][c]["source"] for c in rank(q, data))[:10]
        rows.append((ndcg_at(ranked, q["gold_set"]), recall_at(ranked, q["gold_set"], 5)))
    return np.array(rows)


def bootstrap(diff: np.ndarray, n: int = 10000, seed: int = 0) -> list[float]:
    """95% interval of the mean of a paired difference, resampling questions."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n, len(diff)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def main(lam: float = 1.0, depth: int = 20) -> None:
    base = baselines()
    report: dict[str, Any] = {"sweep": {}, "recommended": {"lam": lam, "depth": depth}}
    rows = {
        "ours (shipped)": {s: base[s]["ours"] for s in SETS},
        "bm25 only": {s: base[s]["bm25"] for s in SETS},
    }
    for d in (20, 30):
        for lam_ in LAMS:
            r = {s: score(load(s), bigram_ranker(lam_, d)) for s in SETS}
            rows[f"depth {d} lam {lam_}"] = r
            report["sweep"][f"depth={d}/lam={lam_}"] = {
                s: {**x, **verdict(x, base[s])} for s, x in r.items()
            }
    print(table(rows, base))
    # Leave one set out: lam chosen on the other sets' Chinese questions (mean nDCG@10 + R@5).
    zh_sets = ["xquad_zh", "cmrc2018_dev", "rgb_zh_int", "corpus"]

    def zh_value(s: str, lam_: float) -> float:
        x = report["sweep"][f"depth={depth}/lam={lam_}"][s]
        return x.get("zh:ndcg@10", x["ndcg@10"]) + x.get("zh:recall@5", x["recall@5"])

    held: dict[str, dict[str, float]] = {}
    for s in SETS:
        others = [t for t in zh_sets if t != s]
        best = max(LAMS, key=lambda x: (np.mean([zh_value(t, x) for t in others]), -x))
        held[s] = {**report["sweep"][f"depth={depth}/lam={best}"][s], "lam": best}
    report["leave_one_set_out"] = held
    print(table({"held-out lam choice": held}, base).split("\n", 1)[1])
    print({s: h["lam"] for s, h in held.items()})
    # Paired bootstrap: the recommended setting against the best baseline and against ours.
    for s in SETS:
        data = load(s)
        mine = per_question(data, bigram_ranker(lam, depth))
        shipped = per_question(data, ours)
        bm25 = per_question(data, bm25_only)
        report["recommended"][s] = {
            "vs_bm25_ci95": {
                "ndcg@10": bootstrap(mine[:, 0] - bm25[:, 0]),
                "recall@5": bootstrap(mine[:, 1] - bm25[:, 1]),
            },
            "vs_ours_ci95": {
                "ndcg@10": bootstrap(mine[:, 0] - shipped[:, 0]),
                "recall@5": bootstrap(mine[:, 1] - shipped[:, 1]),
            },
            "ours_vs_bm25_ci95": {
                "ndcg@10": bootstrap(shipped[:, 0] - bm25[:, 0]),
                "recall@5": bootstrap(shipped[:, 1] - bm25[:, 1]),
            },
        }
        print(s, json.dumps(report["recommended"][s]), file=sys.stderr)
    out = REPO / "bench" / "results" / "research-bigram.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(*(float(a) if "." in a else int(a) for a in sys.argv[1:]))  # type: ignore[arg-type]

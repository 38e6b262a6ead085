"""What embedding one query costs with each embedder, and each one's memory: the part of a
search's latency that depends on the embedder (the rest, Chroma, BM25 and HTTP, does not: every
embedder here gives 384-dimensional vectors).

    .venv/bin/python bench/query_embedding.py            # 300 SciFact claims, 50 XQuAD-zh questions

Each embedder runs in a process of its own (load, 10 warm-up queries, then the questions one at
a time, as a search does), so its peak RSS is its own. Writes
bench/results/query-embedding.json and prints a Markdown table.
"""

from __future__ import annotations

import json
import sys
import time

from _common import EVAL_DIR, REPO, run_measured

from evaluation.metrics import percentile

# (label, RAG_EMBEDDER__* settings)
EMBEDDERS = [
    ("e5, int8 (onnxruntime), default", {"BACKEND": "e5", "PRECISION": "int8"}),
    ("e5, fp32 (torch)", {"BACKEND": "e5", "PRECISION": "fp32"}),
    ("MiniLM, torch", {"BACKEND": "sentence-transformers"}),
    ("MiniLM, `onnx-int8`", {"BACKEND": "onnx-int8"}),
]


def questions(name: str, n: int) -> list[str]:
    with (EVAL_DIR / name / "questions.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line, _ in zip(fh, range(n), strict=False)]


def one() -> None:
    """In the child: the embedder the environment selects, timed per query."""
    from rag_service.embedders import build_embedder
    from rag_service.settings import Settings

    started = time.perf_counter()
    embedder = build_embedder(Settings().embedder)
    embedder.warm_up()
    load_s = time.perf_counter() - started
    out: dict[str, object] = {"load_s": load_s}
    for name, n in (("scifact_train", 300), ("xquad_zh", 50)):
        texts = questions(name, n)
        for text in texts[:10]:
            embedder.embed_query(text)
        ms = []
        for text in texts:
            t = time.perf_counter()
            embedder.embed_query(text)
            ms.append((time.perf_counter() - t) * 1000)
        out[name] = {"queries": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}
    print(json.dumps(out))


def main() -> None:
    rows = []
    for label, env in EMBEDDERS:
        run = run_measured(
            [sys.executable, __file__, "--one"],
            {f"RAG_EMBEDDER__{k}": v for k, v in env.items()},
        )
        rows.append({"embedder": label, **json.loads(run.stdout), "peak_rss_mb": run.peak_rss_mb})
    out = REPO / "bench" / "results" / "query-embedding.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "| embedder | English query p50 / p95 ms | Chinese query p50 / p95 ms | load s | RSS MB |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        en, zh = r["scifact_train"], r["xquad_zh"]
        print(
            f"| {r['embedder']} | {en['p50_ms']:.1f} / {en['p95_ms']:.1f} "
            f"| {zh['p50_ms']:.1f} / {zh['p95_ms']:.1f} | {r['load_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    one() if sys.argv[1:] == ["--one"] else main()

"""Ingest benchmark: our `rag reindex` against LangChain's Chroma.from_documents on the same
embedder (the default, e5 int8), and our `rag reindex` with MiniLM (the default until e5), same
machine, same run; each system is a separate process, timed whole.

    python bench/ingest_bench.py corpus                        # the shipped corpus/
    python bench/ingest_bench.py scifact_train --limit 1000    # the first 1,000 SciFact abstracts

Writes bench/results/ingest-<dataset>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO, ProcessRun, materialise_eval_corpus, run_measured

PY = sys.executable


def _system(run: ProcessRun, chunks: int) -> dict[str, float]:
    return {
        "chunks": chunks,
        "wall_s": run.wall_s,
        "chunks_per_s": chunks / run.wall_s,
        "peak_rss_mb": run.peak_rss_mb,
    }


# Ours with each embedder, by the RAG_EMBEDDER__* variables that select it (label, key, env).
OURS = [
    ("ours, `rag reindex` (e5 int8, default)", "ours", {}),
    (
        "ours, `rag reindex` (MiniLM, torch)",
        "ours_minilm",
        {"RAG_EMBEDDER__BACKEND": "sentence-transformers"},
    ),
    (
        "ours, `rag reindex` (MiniLM, `onnx-int8`)",
        "ours_onnx_int8",
        {"RAG_EMBEDDER__BACKEND": "onnx-int8"},
    ),
]


def bench(dataset: str, limit: int | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        folder = (
            REPO / "corpus"
            if dataset == "corpus"
            else materialise_eval_corpus(dataset, work / "docs", limit)
        )
        reindex = [PY, "-m", "rag_cli", "reindex", str(folder), "--json"]
        result: dict[str, object] = {"dataset": dataset, "documents_limit": limit}
        for _, key, env in OURS:
            run = run_measured(reindex, {"RAG_DATA_DIR": str(work / key), **env})
            result[key] = _system(run, json.loads(run.stdout)["chunks"]["total"])
        noop = run_measured(reindex, {"RAG_DATA_DIR": str(work / "ours")})
        assert json.loads(noop.stdout)["chunks"]["embedded"] == 0
        result["ours_noop_reindex"] = {"wall_s": noop.wall_s, "peak_rss_mb": noop.peak_rss_mb}
        lc_cmd = [PY, str(REPO / "bench" / "langchain_ingest.py"), str(folder), str(work / "lc")]
        langchain = run_measured(lc_cmd)
        result["langchain_from_documents"] = _system(
            langchain, json.loads(langchain.stdout)["chunks"]
        )
    return result


def table(result: dict[str, Any]) -> str:
    lc = result["langchain_from_documents"]
    rows = [
        f"{result['dataset']}:",
        "| system | chunks | wall s | chunks/s | peak RSS MB | LangChain wall / this |",
        "|---|---|---|---|---|---|",
    ]
    systems = [(label, key) for label, key, _ in OURS]
    for label, key in [
        *systems,
        ("LangChain `Chroma.from_documents` (e5 int8)", "langchain_from_documents"),
    ]:
        r = result[key]
        rows.append(
            f"| {label} | {r['chunks']} | {r['wall_s']:.1f} | {r['chunks_per_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {lc['wall_s'] / r['wall_s']:.2f} |"
        )
    n = result["ours_noop_reindex"]
    # LangChain's recipe has no incremental mode: picking up any change means a full run again.
    rows.append(
        f"| ours, `rag reindex`, nothing changed | 0 embedded | {n['wall_s']:.2f} | – "
        f"| {n['peak_rss_mb']:.0f} | {lc['wall_s'] / n['wall_s']:.1f} |"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", default="corpus")
    parser.add_argument("--limit", type=int, default=None, help="documents of an eval set")
    args = parser.parse_args()
    dataset = args.dataset
    result = bench(dataset, args.limit)
    out = REPO / "bench" / "results" / f"ingest-{dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))

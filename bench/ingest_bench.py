"""Ingest benchmark: our `rag reindex` against LangChain's Chroma.from_documents, same embedder,
same machine, same run; each system is a separate process, timed whole.

    python bench/ingest_bench.py corpus          # the shipped corpus/
    python bench/ingest_bench.py scifact_train   # ../shared/eval/scifact_train, 5,183 abstracts

Writes bench/results/ingest-<dataset>.json and prints a Markdown table.
"""

from __future__ import annotations

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


def bench(dataset: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        folder = (
            REPO / "corpus"
            if dataset == "corpus"
            else materialise_eval_corpus(dataset, work / "docs")
        )
        reindex = [PY, "-m", "rag_cli", "reindex", str(folder), "--json"]
        torch_env = {"RAG_DATA_DIR": str(work / "ours")}
        onnx_env = {"RAG_DATA_DIR": str(work / "onnx"), "RAG_EMBEDDER__BACKEND": "onnx-int8"}

        first = run_measured(reindex, torch_env)
        noop = run_measured(reindex, torch_env)
        assert json.loads(noop.stdout)["chunks"]["embedded"] == 0
        onnx = run_measured(reindex, onnx_env)
        lc_cmd = [PY, str(REPO / "bench" / "langchain_ingest.py"), str(folder), str(work / "lc")]
        langchain = run_measured(lc_cmd)

    chunks = json.loads(first.stdout)["chunks"]["total"]
    return {
        "dataset": dataset,
        "ours": _system(first, chunks),
        "ours_noop_reindex": {"wall_s": noop.wall_s, "peak_rss_mb": noop.peak_rss_mb},
        "ours_onnx_int8": _system(onnx, json.loads(onnx.stdout)["chunks"]["total"]),
        "langchain_from_documents": _system(langchain, json.loads(langchain.stdout)["chunks"]),
    }


def table(result: dict[str, Any]) -> str:
    lc = result["langchain_from_documents"]
    rows = [
        f"{result['dataset']}:",
        "| system | chunks | wall s | chunks/s | peak RSS MB | LangChain wall / this |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in [
        ("ours, `rag reindex` (torch, default)", "ours"),
        ("ours, `rag reindex` (`onnx-int8` backend)", "ours_onnx_int8"),
        ("LangChain `Chroma.from_documents`", "langchain_from_documents"),
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
    dataset = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    result = bench(dataset)
    out = REPO / "bench" / "results" / f"ingest-{dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))

"""/v1/search with the vector store inside the API process against Chroma's own server, in one
run, on the SciFact index (~10.8k chunks, the same chunks and vectors for every mode):

    python bench/store_modes.py                 # --single 400 --concurrent 800 by default

- ``embedded``: the default ``RAG_STORE__BACKEND=chroma`` (a PersistentClient under the data dir);
- ``chroma-http``: ``RAG_STORE__BACKEND=chroma-http`` against ``chroma run`` on loopback;
- ``chroma-http x2``: two API processes on that server and data dir, the clients split
  round-robin between them (what ``docker compose up --scale api=2`` does behind the proxy).

Both indexes are one commit: the same fingerprint, collection name, manifest and BM25 files;
only the store differs. The Chroma server that receives the vectors is stopped and a fresh one
is started on the same path for the measurements, so that, like the embedded API process, it
loads the collection from disk instead of keeping what the writes left in memory.

Measured per mode as in ``search_bench.py`` (whose helpers this imports): one client in
sequence gives p50/p95, eight client threads give requests per second; peak RSS is the VmHWM
of each API process and of the Chroma server (a high-water mark since it started, so the x2
figure covers both server phases). Every claim is then searched once more in each mode and the
top 5 compared: ``chroma-http`` with ``embedded``, the two replicas with ``chroma-http``, and, as
a control, ``embedded`` with a second embedded store built from the same vectors (Chroma's HNSW
graph differs from one build to the next, so the dense candidates can too).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import REPO
from search_bench import PY, measure, scifact_chunks, server, vm_hwm_mb, write_index

from rag_service.index_state import IndexState
from rag_service.settings import Settings, StoreSettings
from tests.servers import chroma_server, free_port

TOP_K = 5
Hit = dict[str, Any]  # a passage of a response: chunk id, score, BM25 and dense ranks


@contextmanager
def api_servers(
    settings: Settings, replicas: int
) -> Iterator[tuple[list[str], list[subprocess.Popen[bytes]]]]:
    """`rag serve` processes on free ports with these settings: their search URLs and processes."""
    env = {
        "RAG_DATA_DIR": str(settings.data_dir),
        "RAG_STORE__BACKEND": settings.store.backend,
        "RAG_STORE__CHROMA_HOST": settings.store.chroma_host,
        "RAG_STORE__CHROMA_PORT": str(settings.store.chroma_port),
    }
    with ExitStack() as stack:
        urls, procs = [], []
        for _ in range(replicas):
            port = free_port()
            cmd = [PY, "-m", "rag_cli", "serve", "--port", str(port)]
            procs.append(stack.enter_context(server(cmd, env, f"http://127.0.0.1:{port}/v1/index")))
            urls.append(f"http://127.0.0.1:{port}/v1/search")
        yield urls, procs


def ranked(urls: list[str], questions: list[str]) -> tuple[list[list[Hit]], dict[str, float]]:
    """Each question's top 5 (`Hit`s), the URLs taking turns; and the median
    time of each pipeline stage as the service reports it."""
    tops: list[list[Hit]] = []
    stages: dict[str, list[float]] = {}
    with httpx.Client(timeout=120) as client:
        for n, q in enumerate(questions):
            response = client.post(urls[n % len(urls)], json={"query": q, "top_k": TOP_K})
            body = response.raise_for_status().json()
            tops.append(
                [
                    {
                        "id": p["chunk_id"],
                        "score": p["score"],
                        "bm25_rank": p["detail"]["bm25_rank"],
                        "dense_rank": p["detail"]["dense_rank"],
                    }
                    for p in body["passages"]
                ]
            )
            for stage, ms in body["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
    return tops, {stage: statistics.median(ms) for stage, ms in stages.items()}


def compare(
    reference: list[list[Hit]], other: list[list[Hit]], questions: list[str]
) -> dict[str, Any]:
    """Queries whose top 5 ids (in order) differ, and of the others those whose scores differ
    (fusion normalises each list by its own range, so another dense list moves the scores).

    Not below 1e-6: a Chroma server sends its float32 distances as the shortest decimal that
    reads back as the same float32, the embedded client their exact value, which differ by ~1e-8.
    """
    differ, rescored = [], []
    for n, (a, b) in enumerate(zip(reference, other, strict=True)):
        if [hit["id"] for hit in a] != [hit["id"] for hit in b]:
            differ.append(n)
        elif any(abs(x["score"] - y["score"]) > 1e-6 for x, y in zip(a, b, strict=True)):
            rescored.append(n)
    return {
        "queries": len(reference),
        "top5_identical": len(reference) - len(differ),
        "top5_differ": len(differ),
        "same_ids_other_scores": len(rescored),
        "examples": [
            {"query": questions[n], "first": reference[n], "second": other[n]} for n in differ[:5]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=400, help="sequential requests")
    parser.add_argument("--concurrent", type=int, default=800, help="requests over 8 clients")
    args = parser.parse_args()
    began = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="rag-store-modes-") as tmp:
        root, chroma_port = Path(tmp), free_port()
        embedded = Settings(_env_file=None, data_dir=root / "embedded")
        store = StoreSettings(
            backend="chroma-http", chroma_host="127.0.0.1", chroma_port=chroma_port
        )
        remote = Settings(_env_file=None, data_dir=root / "http", store=store)
        rebuilt = Settings(_env_file=None, data_dir=root / "embedded-rebuilt")

        # The temporary index inside `scifact_chunks` must not go to the server: embedded.
        chunks, matrix, questions = scifact_chunks(embedded, 0)
        write_index(embedded, chunks, matrix)
        write_index(rebuilt, chunks, matrix)
        with chroma_server(root / "chroma-server", chroma_port):
            write_index(remote, chunks, matrix)
        pointers = [IndexState(s.data_dir).current() for s in (embedded, rebuilt, remote)]
        commit = [
            {f: getattr(p, f) for f in ("collection", "generation", "fingerprint", "chunks")}
            for p in pointers
            if p is not None
        ]
        assert len(commit) == 3 and commit[0] == commit[1] == commit[2], pointers
        random.Random(1).shuffle(questions)

        figures: dict[str, dict[str, Any]] = {}
        tops: dict[str, list[list[Hit]]] = {}

        def run(mode: str, settings: Settings, replicas: int, chroma: int | None = None) -> None:
            with api_servers(settings, replicas) as (urls, procs):
                result: dict[str, Any] = dict(
                    measure(urls, questions, args.single, args.concurrent)
                )
                tops[mode], result["stage_median_ms"] = ranked(urls, questions)
                result["api_peak_rss_mb"] = [vm_hwm_mb(p.pid) for p in procs]
                if chroma is not None:  # its peak since it started: x2 includes the single phase
                    result["chroma_server_peak_rss_mb"] = vm_hwm_mb(chroma)
                figures[mode] = result

        run("embedded", embedded, 1)
        with chroma_server(root / "chroma-server", chroma_port) as server:
            run("chroma-http", remote, 1, server.pid)
            run("chroma-http x2", remote, 2, server.pid)
        # Control for the top-5 check: the same vectors written again into a second embedded
        # store. Chroma's HNSW graph is not the same from one build to the next.
        with api_servers(rebuilt, 1) as (urls, _):
            tops["embedded, rebuilt"], _ = ranked(urls, questions)

    e = figures["embedded"]
    results = {
        "dataset": "scifact_train",
        "commit": commit[0],
        "single_requests": args.single,
        "concurrent_requests": args.concurrent,
        "clients": 8,
        "cores": 2,
        "modes": figures,
        "ratios_over_embedded": {
            mode: {
                "p50": figures[mode]["p50_ms"] / e["p50_ms"],
                "p95": figures[mode]["p95_ms"] / e["p95_ms"],
                "rps": figures[mode]["rps_8_clients"] / e["rps_8_clients"],
            }
            for mode in ("chroma-http", "chroma-http x2")
        },
        "top5": {
            f"{a} vs {b}": compare(tops[a], tops[b], questions)
            for a, b in (
                ("embedded", "chroma-http"),
                ("embedded", "embedded, rebuilt"),
                ("chroma-http", "chroma-http x2"),
            )
        },
        "wall_s": time.perf_counter() - began,
    }
    out = REPO / "bench" / "results" / "store-modes-scifact_train.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Search latency while a large upload is being embedded, and how long another collection's small
upload waits meanwhile.

    python bench/search_during_upload.py                        # this tree's server
    python bench/search_during_upload.py --code /tmp/before     # another tree's (e.g. main)

A fresh ``rag serve`` (default settings but a temporary data folder; ``--backend`` picks the
embedder) gets a small collection to search. Then, over HTTP, one query at a time:
1. ``idle``: ``--searches`` searches, nothing else running; then a one-paragraph document PUT
   into a collection, timed from the request to ``done`` (``small_job_idle_s``);
2. a ~``--chunks``-chunk document is PUT into another collection; once its job reports
   embedding progress, the same small upload into a third collection is timed while the large
   job runs (``small_job_during_upload_s``, bounded by ``--small-timeout``);
3. ``upload``: the same searches again while the large job still embeds (at most
   ``--max-during-s`` seconds of them: a server whose searches queue behind the job's
   embedding would otherwise take as long as the whole upload).
Reported: p50/p95 of each series and the ratio upload/idle. The large job is then cancelled
(``DELETE /v1/jobs/{id}``; a server without it is simply stopped), so a run takes minutes, not
the hour the upload would. ``--code`` runs the server from another checkout (PYTHONPATH) for a
before/after comparison on the same machine and data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import REPO

from tests.servers import api_server

QUERIES = [
    "how does multi-head attention work",
    "what is a vector database",
    "positional encoding of tokens",
    "向量数据库如何检索",
    "scaled dot-product attention",
    "approximate nearest neighbour index",
]


def _long_document(chunks: int) -> bytes:
    # Ten ~85-character paragraphs fill one 1,000-character chunk of the default splitter.
    return "\n\n".join(
        f"Paragraph {i} tells of harbour number {i} and the ships that sailed from it at dawn."
        for i in range(chunks * 10)
    ).encode()


def _wait(client: httpx.Client, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    return job


def _put(client: httpx.Client, collection: str, path: str, body: bytes) -> dict[str, Any]:
    response = client.put(f"/v1/collections/{collection}/documents/{path}", content=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _searches(client: httpx.Client, n: int, max_s: float = float("inf")) -> list[float]:
    """Up to ``n`` searches, one at a time, for at most ``max_s`` seconds."""
    times: list[float] = []
    deadline = time.monotonic() + max_s
    for i in range(n):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        response = client.post(
            "/v1/search", json={"query": QUERIES[i % len(QUERIES)], "collection": "docs"}
        )
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
    }


def _small_job(client: httpx.Client, collection: str, timeout_s: float) -> float | None:
    client.put(f"/v1/collections/{collection}")
    started = time.perf_counter()
    job = _put(client, collection, "small.md", b"# Herons\n\nHerons wade in shallow water.")
    job = _wait(client, job, timeout_s)
    return round(time.perf_counter() - started, 2) if job["state"] == "done" else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        root = Path(tmp)
        env = {
            "RAG_DATA_DIR": str(root / "data"),
            "RAG_CORPUS_DIR": str(root / "empty"),
            "RAG_EMBEDDER__BACKEND": args.backend,
            **({"PYTHONPATH": str(args.code)} if args.code else {}),
        }
        (root / "empty").mkdir()
        with api_server(root, env) as url, httpx.Client(base_url=url, timeout=120) as client:
            client.put("/v1/collections/docs")
            for path in sorted((REPO / "tests" / "data" / "docs").rglob("*.md")):
                _wait(client, _put(client, "docs", path.name, path.read_bytes()), 120)
            _searches(client, 3)  # warm
            idle = _searches(client, args.searches)
            small_idle = _small_job(client, "small-idle", args.small_timeout)

            client.put("/v1/collections/big")
            big = _put(client, "big", "long.md", _long_document(args.chunks))
            while not big["progress"] and big["state"] in ("queued", "running"):
                time.sleep(0.1)
                big = client.get(f"/v1/jobs/{big['id']}").json()
            small_busy = _small_job(client, "small-busy", args.small_timeout)
            during = _searches(client, args.searches, args.max_during_s)
            big = client.get(f"/v1/jobs/{big['id']}").json()
            cancel = client.delete(f"/v1/jobs/{big['id']}")
        idle_s, during_s = _summary(idle), _summary(during)
        return {
            "code": str(args.code or REPO),
            "backend": args.backend,
            "chunks": args.chunks,
            "load_average": os.getloadavg()[0],
            "idle": idle_s,
            "upload": during_s,
            "p95_ratio": round(during_s["p95_ms"] / idle_s["p95_ms"], 2),
            "p50_ratio": round(during_s["p50_ms"] / idle_s["p50_ms"], 2),
            "big_job_progress_at_end": big["progress"],
            "small_job_idle_s": small_idle,
            "small_job_during_upload_s": small_busy,  # None: not done within --small-timeout
            "small_timeout_s": args.small_timeout,
            "cancel_status": cancel.status_code,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, help="the checkout whose server to run")
    parser.add_argument("--backend", default="e5", help="RAG_EMBEDDER__BACKEND")
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=60)
    parser.add_argument("--small-timeout", type=float, default=120.0)
    parser.add_argument(
        "--max-during-s", type=float, default=300.0, help="bound on the searches during the upload"
    )
    parser.add_argument("--out", type=Path, help="also write the result here (JSON)")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

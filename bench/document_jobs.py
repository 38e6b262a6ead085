"""What one document written over HTTP costs, against the CLI way of adding it, same run.

    python bench/document_jobs.py --documents 100 1000

For each size N: a managed collection is filled with N XQuAD English contexts in multipart
uploads of 100 files (one job each), then, timed from the request to the job's ``done``:
- ``put_new``: PUT of a new document (one small file: load, split, embed, commit);
- ``put_same``: PUT of the same bytes again (nothing embedded);
- ``delete``: DELETE of that document.
The baseline is what adding a document took before collections: the file copied into a folder
mirrored by a collection, then ``rag reindex PATH --collection`` in its own process (model load
included, as an operator runs it). Each is repeated ``--repeats`` times; medians are reported,
and the ratio baseline / API. Every job re-scans the collection's folder (hashing each file),
which is what grows with N.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import EVAL_DIR, REPO

from tests.servers import api_server


def _contexts(n: int) -> list[tuple[str, str]]:
    docs = []
    with (EVAL_DIR / "xquad_en" / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            docs.append((f"{doc['doc_id']}.md", f"# {doc['title']}\n\n{doc['text']}\n"))
    # XQuAD has 240 contexts: larger sizes repeat them under new names (distinct bytes).
    return [
        (f"{i:05d}-{name}", f"{text}\n(copy {i // len(docs)})\n")
        for i, (name, text) in ((i, docs[i % len(docs)]) for i in range(n))
    ]


def _wait(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    while job["state"] in ("queued", "running"):
        time.sleep(0.02)
        response = client.get(f"/v1/jobs/{job['id']}")
        assert response.status_code == 200, response.text
        job = response.json()
    assert job["state"] == "done", job
    return job


def _timed(client: httpx.Client, method: str, path: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    response = client.request(method, path, **kwargs)
    assert response.status_code == 202, response.text
    _wait(client, response.json())
    return time.perf_counter() - started


def measure(n: int, repeats: int, root: Path) -> dict[str, Any]:
    # Polling every 20 ms would pass the per-client rate limit: it is not what is measured here.
    env = {
        "RAG_DATA_DIR": str(root / "data"),
        "RAG_CORPUS_DIR": str(root / "empty"),
        "RAG_API__RATE_LIMIT_PER_MINUTE": "0",
    }
    (root / "empty").mkdir()
    docs = _contexts(n)
    new_doc = b"# Lighthouses\n\nThe Bell Rock lighthouse was finished in 1810.\n"
    result: dict[str, Any] = {"documents": n}
    with api_server(root, env) as url, httpx.Client(base_url=url, timeout=600) as client:
        client.put("/v1/collections/bench")
        fill = 0.0
        for start in range(0, n, 100):  # RAG_API__MAX_UPLOAD_FILES per upload
            batch = docs[start : start + 100]
            files = [("files", (name, text.encode())) for name, text in batch]
            fill += _timed(client, "POST", "/v1/collections/bench/documents", files=files)
        result["fill_s"] = round(fill, 2)
        runs: dict[str, list[float]] = {"put_new": [], "put_same": [], "delete": []}
        for i in range(repeats):
            path = f"/v1/collections/bench/documents/new-{i}.md"
            runs["put_new"].append(_timed(client, "PUT", path, content=new_doc + str(i).encode()))
            runs["put_same"].append(_timed(client, "PUT", path, content=new_doc + str(i).encode()))
            runs["delete"].append(_timed(client, "DELETE", path))
    mirrored = root / "mirrored"
    mirrored.mkdir()
    for name, text in docs:
        (mirrored / name).write_text(text, encoding="utf-8")
    cli = [
        sys.executable,
        "-m",
        "rag_cli",
        "reindex",
        str(mirrored),
        "--collection",
        "cli",
        "--json",
    ]
    cli_env = {**os.environ, **env}
    subprocess.run(cli, env=cli_env, check=True, capture_output=True, cwd=REPO)
    runs["cli_new"] = []
    for i in range(repeats):
        (mirrored / f"new-{i}.md").write_bytes(new_doc + str(i).encode())
        started = time.perf_counter()
        subprocess.run(cli, env=cli_env, check=True, capture_output=True, cwd=REPO)
        runs["cli_new"].append(time.perf_counter() - started)
    medians = {k: round(statistics.median(v) * 1000) for k, v in runs.items()}
    result["median_ms"] = medians
    result["cli_over_api_put_new"] = round(medians["cli_new"] / medians["put_new"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/document-jobs.json")
    args = parser.parse_args()
    results = []
    for n in args.documents:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(measure(n, args.repeats, Path(tmp)))
            print(json.dumps(results[-1]))
    args.out.write_text(
        json.dumps({"command": " ".join(sys.argv), "runs": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()

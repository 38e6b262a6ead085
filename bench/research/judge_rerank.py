"""The judge as a reranker: does ordering the fused top passages by the judge's P(answers)
put the gold passage first more often than the fused order does?

A reranker can only change a question by moving the gold passage to the top (the fused order
missed it but has it within ``--depth``) or away from it (the fused order had it first). So the
fused top ``--depth`` of every question is computed first, and the judge (Qwen2.5-Coder-1.5B-
Instruct through llama.cpp, shown the window around the sentence nearest the question, as the
refusal cascade shows it) reorders an even sample of up to ``--questions`` of each kind (ties
keep the fused order). The set's hit@1 under the judge is then the fused hit@1, minus the share
of the first kind it breaks, plus the share of the second kind it fixes. Writes
bench/results/research-judge-rerank.json.

    RAG_JUDGE__BACKEND=llamacpp OMP_WAIT_POLICY=passive .venv/bin/python \
        bench/research/judge_rerank.py xquad_en xquad_zh cmrc2018_dev xquad_en2zh xquad_zh2en \
        --questions 8 --depth 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import EVAL_DIR, REPO
from asked import CACHE

from evaluation.datasets import Question
from evaluation.runner import prepared_set
from rag_service.judging import bounded_passage, build_judge
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.protocols import EvidenceJudge
from rag_service.retrieval.language import query_language
from rag_service.retrieval.results import RetrievedPassage
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity


def first_after_judging(
    judge: EvidenceJudge,
    sentences: SentenceSimilarity,
    budget: int,
    question: Question,
    passages: list[RetrievedPassage],
) -> tuple[bool, list[float]]:
    """Whether the passage the judge likes best is a gold one, and each judgement's time."""
    query = sentences.query_vector(question.question)
    language = query_language(question.question)
    probabilities, ms = [], []
    for x in passages:
        window = bounded_passage(*sentences.scored(query, x.chunk.text), budget)
        judged = judge.judge(question.question, language, window)
        probabilities.append(judged.probability)
        ms.append(judged.ms)
    top = max(range(len(passages)), key=lambda i: (probabilities[i], -i))
    return passages[top].chunk.source in question.gold, ms


def spread(items: list, n: int) -> list:
    return items[:: max(len(items) // n, 1)][:n] if items else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+", help="Names under ../shared/eval, or 'corpus'.")
    parser.add_argument("--questions", type=int, default=8, help="Judged per kind and set.")
    parser.add_argument("--depth", type=int, default=5, help="Fused passages reordered.")
    args = parser.parse_args()
    settings = Settings()
    judge = build_judge(settings, ExtractiveAnswerer())
    if judge is None:
        sys.exit("set RAG_JUDGE__BACKEND=llamacpp")
    judge.warm_up()
    results = {}
    try:
        for name in args.sets:
            folder = REPO / "corpus" if name == "corpus" else EVAL_DIR / name
            ms: list[float] = []
            with prepared_set(folder, settings, CACHE, None) as p, p.service.current() as served:
                sentences = SentenceSimilarity(p.embedder)
                hits, misses, total = [], [], 0
                for q in p.eval_set.questions:
                    if not q.gold:
                        continue
                    total += 1
                    found = p.service.search_served(served, q.question, args.depth, None)
                    relevant = [x.chunk.source in q.gold for x in found.passages]
                    if relevant and relevant[0]:
                        hits.append((q, list(found.passages)))
                    elif any(relevant):
                        misses.append((q, list(found.passages)))
                budget = settings.judge.passage_tokens
                kept, fixed = [], []
                for sample, outcomes in ((hits, kept), (misses, fixed)):
                    for q, passages in spread(sample, args.questions):
                        first, took = first_after_judging(judge, sentences, budget, q, passages)
                        outcomes.append(first)
                        ms += took
            broken_share = 1 - sum(kept) / len(kept) if kept else 0.0
            fixed_share = sum(fixed) / len(fixed) if fixed else 0.0
            fused = len(hits) / total
            results[name] = {
                "questions": total,
                "fused_hit@1": fused,
                "gold_below_first": len(misses) / total,
                "judged": {"first": len(kept), "below": len(fixed)},
                "broken": f"{len(kept) - sum(kept)} of {len(kept)}",
                "fixed": f"{sum(fixed)} of {len(fixed)}",
                "judge_hit@1": fused - fused * broken_share + len(misses) / total * fixed_share,
                "judgement_ms": {"p50": statistics.median(ms), "max": max(ms)},
            }
            print(name, json.dumps(results[name]), flush=True)
    finally:
        judge.close()
    out = REPO / "bench" / "results" / "research-judge-rerank.json"
    out.write_text(json.dumps({"depth": args.depth, **results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

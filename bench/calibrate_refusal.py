"""Choose the refusal rules (RAG_ANSWER__MIN_COVERAGE_EN / _ZH / _CROSS and
SIMILARITY_WEIGHT_EN / _ZH / _CROSS) from answer records.

    .venv/bin/python bench/calibrate_refusal.py bench/results/answer-records-*.json

The service answers when coverage + weight x similarity reaches the threshold (coverage: the
share of the question's informative words in the best passage; similarity: the question's best
cosine with a sentence of the top passage). Each question is judged by the rule of its language,
or by the cross-lingual rule when the top passage is in the other language; a record says which
rule judged it with its gold documents indexed and with them filtered out. For each rule, weight
and threshold: how often an answerable question is refused (gold indexed, evidence below the
threshold) and how often an unanswerable one is answered (gold filtered out, evidence at or
above it). The chosen pair minimises the sum of the two rates, averaged over the sets with at
least 20 questions of the rule in both conditions (each set counts once, whatever its size);
leaving each set out in turn, the pair chosen on the others is scored on it. Weight 0 is
coverage alone. Writes bench/results/refusal-calibration.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WEIGHTS = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0]
STEPS = 200  # thresholds per weight, evenly spaced over the scores' range
MIN_QUESTIONS = 20

Evidence = tuple[float, float]  # coverage, similarity
Scores = tuple[list[Evidence], list[Evidence]]  # with the gold documents, without them


def scores(records: list[dict[str, Any]], rule: str) -> Scores:
    def pair(r: dict[str, Any], suffix: str) -> Evidence:
        return float(r["coverage" + suffix]), float(r["similarity" + suffix] or 0.0)

    gold = [pair(r, "") for r in records if r["rule"] == rule]
    without = [pair(r, "_without_gold") for r in records if r["rule_without_gold"] == rule]
    return gold, without


def rates(scored: Scores, weight: float, t: float) -> tuple[float, float]:
    gold, without = scored
    refused = sum(c + weight * s < t for c, s in gold) / max(len(gold), 1)
    answered = sum(c + weight * s >= t for c, s in without) / max(len(without), 1)
    return refused, answered


def candidates(sets: dict[str, Scores]) -> list[tuple[float, float]]:
    pairs = []
    for w in WEIGHTS:
        values = [c + w * s for gold, without in sets.values() for c, s in gold + without]
        low, high = min(values), max(values)
        pairs += [(w, round(low + (high - low) * i / STEPS, 4)) for i in range(STEPS + 1)]
    return pairs


def choose(
    sets: dict[str, Scores], pairs: list[tuple[float, float]]
) -> tuple[tuple[float, float], float]:
    def cost(pair: tuple[float, float]) -> float:
        return sum(sum(rates(scored, *pair)) for scored in sets.values()) / len(sets)

    best = min(pairs, key=cost)
    return best, cost(best)


def main() -> None:
    records = {
        path.stem.removeprefix("answer-records-"): json.loads(path.read_text())
        for path in map(Path, sys.argv[1:])
    }
    rules = sorted({r["rule"] for recs in records.values() for r in recs})
    result: dict[str, Any] = {}
    for rule in rules:
        sets = {name: scores(recs, rule) for name, recs in records.items()}
        sets = {n: s for n, s in sets.items() if min(map(len, s)) >= MIN_QUESTIONS}
        if not sets:
            continue
        pairs = candidates(sets)
        (weight, threshold), cost = choose(sets, pairs)
        coverage_only, cost_coverage = choose(sets, [p for p in pairs if p[0] == 0.0])
        per_set = {}
        for name, scored in sets.items():
            others = {n: s for n, s in sets.items() if n != name}
            held = choose(others, pairs)[0] if others else None
            per_set[name] = {
                "questions": [len(part) for part in scored],
                "chosen": rates(scored, weight, threshold),
                "coverage_only": rates(scored, *coverage_only),
                "left_out": held and {"pair": held, "rates": rates(scored, *held)},
            }
        result[rule] = {
            "weight": weight,
            "threshold": threshold,
            "mean_error": cost / 2,
            "coverage_only": {"threshold": coverage_only[1], "mean_error": cost_coverage / 2},
            "sets": per_set,
        }
        print(
            f"{rule}: weight {weight}, threshold {threshold} (mean of the two error rates "
            f"{cost / 2:.3f}; coverage alone: threshold {coverage_only[1]}, "
            f"{cost_coverage / 2:.3f})"
        )
        for name, row in per_set.items():
            (r, a), (rc, ac) = row["chosen"], row["coverage_only"]
            held_out = row["left_out"]
            left = (
                f"left out: {held_out['pair'][0]}, {held_out['pair'][1]}: "
                f"{held_out['rates'][0]:.3f} / {held_out['rates'][1]:.3f}"
                if held_out
                else "no other set"
            )
            print(
                f"  {name:<14} refuses answerable {r:.3f}, answers unanswerable {a:.3f}"
                f"  | coverage alone {rc:.3f} / {ac:.3f}  | {left}"
            )
    out = Path(__file__).parent / "results" / "refusal-calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

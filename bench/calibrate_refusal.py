"""Choose the refusal rule (RAG_ANSWER__MIN_COVERAGE_EN / _ZH and SIMILARITY_WEIGHT_EN / _ZH)
from answer records.

    .venv/bin/python bench/calibrate_refusal.py bench/results/answer-records-*.json

The service answers when coverage + weight x similarity reaches the threshold (coverage: the
share of the question's informative words in the best passage; similarity: the question's
best cosine with a sentence of the top passage). For each language, weight and threshold: how often an answerable
question is refused (its gold documents indexed, evidence below the threshold) and how often an
unanswerable one is answered (gold documents filtered out, evidence at or above it). The chosen
pair minimises the sum of the two rates, averaged over the sets with questions in that language
(each set counts once, whatever its size); leaving each set out in turn, the pair chosen on the
others is scored on it. Weight 0 is coverage alone. Writes bench/results/refusal-calibration.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WEIGHTS = [0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0]
STEPS = 200  # thresholds per weight, evenly spaced over the scores' range


def evidence(record: dict[str, Any], weight: float, gold: bool) -> float:
    cov = record["coverage" if gold else "coverage_without_gold"]
    sim = record.get("similarity" if gold else "similarity_without_gold") or 0.0
    return float(cov) + weight * float(sim)


def rates(records: list[dict[str, Any]], weight: float, t: float) -> tuple[float, float]:
    n = len(records)
    refused = sum(evidence(r, weight, True) < t for r in records) / n
    answered = sum(evidence(r, weight, False) >= t for r in records) / n
    return refused, answered


def candidates(sets: dict[str, list[dict[str, Any]]]) -> list[tuple[float, float]]:
    pairs = []
    for w in WEIGHTS:
        scores = [evidence(r, w, g) for recs in sets.values() for r in recs for g in (True, False)]
        low, high = min(scores), max(scores)
        pairs += [(w, round(low + (high - low) * i / STEPS, 4)) for i in range(STEPS + 1)]
    return pairs


def choose(
    sets: dict[str, list[dict[str, Any]]], pairs: list[tuple[float, float]]
) -> tuple[tuple[float, float], float]:
    def cost(pair: tuple[float, float]) -> float:
        return sum(sum(rates(recs, *pair)) for recs in sets.values()) / len(sets)

    best = min(pairs, key=cost)
    return best, cost(best)


def main() -> None:
    by_language: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in map(Path, sys.argv[1:]):
        name = path.stem.removeprefix("answer-records-")
        for record in json.loads(path.read_text()):
            by_language.setdefault(str(record["language"]), {}).setdefault(name, []).append(record)
    result: dict[str, Any] = {}
    for language, sets in sorted(by_language.items()):
        sets = {name: recs for name, recs in sets.items() if len(recs) >= 20}
        pairs = candidates(sets)
        (weight, threshold), cost = choose(sets, pairs)
        coverage_only, cost_coverage = choose(sets, [p for p in pairs if p[0] == 0.0])
        per_set = {}
        for name, recs in sets.items():
            others = {n: r for n, r in sets.items() if n != name}
            held = choose(others, pairs)[0] if others else (weight, threshold)
            per_set[name] = {
                "chosen": rates(recs, weight, threshold),
                "coverage_only": rates(recs, *coverage_only),
                "left_out": {"pair": held, "rates": rates(recs, *held)},
            }
        result[language] = {
            "weight": weight,
            "threshold": threshold,
            "mean_error": cost / 2,
            "coverage_only": {"threshold": coverage_only[1], "mean_error": cost_coverage / 2},
            "sets": per_set,
        }
        print(
            f"{language}: weight {weight}, threshold {threshold} (mean of the two error rates "
            f"{cost / 2:.3f}; coverage alone: threshold {coverage_only[1]}, "
            f"{cost_coverage / 2:.3f})"
        )
        for name, row in per_set.items():
            (r, a), (rc, ac) = row["chosen"], row["coverage_only"]
            (lr, la), pair = row["left_out"]["rates"], row["left_out"]["pair"]
            print(
                f"  {name:<14} refuses answerable {r:.3f}, answers unanswerable {a:.3f}"
                f"  | coverage alone {rc:.3f} / {ac:.3f}"
                f"  | left out: {pair[0]}, {pair[1]}: {lr:.3f} / {la:.3f}"
            )
    out = Path(__file__).parent / "results" / "refusal-calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

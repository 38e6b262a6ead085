"""Choose the refusal thresholds (RAG_ANSWER__MIN_COVERAGE_EN / _ZH) from answer records.

    .venv/bin/python bench/calibrate_refusal.py bench/results/answer-records-*.json

For each language and threshold: how often an answerable question is refused (its gold
documents indexed, coverage below the threshold) and how often an unanswerable one is answered
(gold documents filtered out, coverage at or above it). The chosen threshold minimises the sum
of the two rates, averaged over the sets with questions in that language (each set counts once,
whatever its size). Writes bench/results/refusal-calibration.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

THRESHOLDS = [round(0.05 * i, 2) for i in range(21)]


def rates(records: list[dict[str, object]], t: float) -> tuple[float, float]:
    n = len(records)
    refused = sum(float(r["coverage"]) < t for r in records) / n  # type: ignore[arg-type]
    answered = sum(float(r["coverage_without_gold"]) >= t for r in records) / n  # type: ignore[arg-type]
    return refused, answered


def main() -> None:
    by_language: dict[str, dict[str, list[dict[str, object]]]] = {}
    for path in map(Path, sys.argv[1:]):
        name = path.stem.removeprefix("answer-records-")
        for record in json.loads(path.read_text()):
            by_language.setdefault(str(record["language"]), {}).setdefault(name, []).append(record)
    result: dict[str, object] = {}
    for language, sets in sorted(by_language.items()):
        sets = {name: recs for name, recs in sets.items() if len(recs) >= 20}
        sweep = []
        for t in THRESHOLDS:
            per_set = {name: rates(recs, t) for name, recs in sets.items()}
            cost = sum(a + b for a, b in per_set.values()) / len(per_set)
            sweep.append({"threshold": t, "cost": cost, "sets": per_set})
        best = min(sweep, key=lambda row: row["cost"])  # type: ignore[arg-type,return-value]
        result[language] = {"chosen": best, "sweep": sweep}
        print(
            f"{language}: threshold {best['threshold']} (mean of the two error rates: "
            f"{float(best['cost']) / 2:.3f})"
        )  # type: ignore[arg-type]
        for name, (refused, answered) in best["sets"].items():  # type: ignore[attr-defined]
            rates_text = f"refuses answerable {refused:.3f}, answers unanswerable {answered:.3f}"
            print(f"  {name:<16} {rates_text}")
    out = Path(__file__).parent / "results" / "refusal-calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

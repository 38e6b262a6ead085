"""Choose the judge's cascade (RAG_JUDGE__BAND_BELOW / _ABOVE, MIN_PROBABILITY_EN / _ZH /
_CROSS) from answer records in which the judge read the band of
±0.3 around the rule's threshold (and every cross-lingual question).

    RAG_JUDGE__BACKEND=llamacpp RAG_JUDGE__BAND_BELOW=0.3 RAG_JUDGE__BAND_ABOVE=0.3 \\
        .venv/bin/python bench/answer_records.py corpus xquad_en xquad_zh cmrc2018_dev \\
        --every 10 --out bench/results/judge  # cmrc2018_dev: --every 27
    .venv/bin/python bench/calibrate_judge.py bench/results/judge/answer-records-*.json

Each record holds, with the gold documents indexed and with them filtered out, the refusal
rule's evidence (coverage and similarity, so its score) and the judge's P(the top passage
answers). A cascade answers when the score is at or above the rule's threshold + band_above,
refuses below threshold - band_below, and in between (and, across languages, always) answers
when P reaches the language's minimum. For each candidate band (the same for every rule, in the
score's units) the minimum P of each language minimises the sum of the two error rates averaged
over that language's sets; the band chosen minimises the worst set's sum plus COST x the share
of questions the judge reads. Then each set is left out in turn: everything is chosen again on
the others and scored on it. Writes bench/results/judge-calibration.json.
"""

from __future__ import annotations

import json
import sys
from itertools import product
from pathlib import Path
from typing import Any

from _common import REPO

from rag_service.settings import Settings

BANDS = [round(0.05 * i, 2) for i in range(0, 7)]  # 0 .. 0.3: the band the records were judged in
PROBABILITIES = [round(0.025 * i, 3) for i in range(1, 40)]
COST = 0.05  # error-rate points worth the judge reading every question
MIN_QUESTIONS = 10


def _rule(settings: Settings, rule: str) -> tuple[float, float]:
    a = settings.answer
    return {
        "en": (a.similarity_weight_en, a.min_coverage_en),
        "zh": (a.similarity_weight_zh, a.min_coverage_zh),
        "cross": (a.similarity_weight_cross, a.min_coverage_cross or 0.0),
        "cross_en": (a.similarity_weight_cross_en, a.min_coverage_cross_en or 0.0),
    }[rule]


CROSS = ("cross", "cross_en")  # both directions: every question goes to the judge, one minimum


Case = tuple[str, float, float | None]  # rule, score - threshold, judge probability if read


def cases(records: list[dict[str, Any]], settings: Settings) -> tuple[list[Case], list[Case]]:
    def case(r: dict[str, Any], suffix: str) -> Case:
        rule = r["rule" + suffix]
        weight, threshold = _rule(settings, rule)
        score = r["coverage" + suffix] + weight * (r["similarity" + suffix] or 0.0)
        return rule, score - threshold, r["judge_probability" + suffix]

    return [case(r, "") for r in records], [case(r, "_without_gold") for r in records]


def answers(case: Case, below: float, above: float, minimum: dict[str, float]) -> bool:
    rule, margin, p = case
    if p is not None and (rule in CROSS or -below <= margin < above):
        return p >= minimum["cross" if rule in CROSS else rule]
    return margin >= 0


def judged(case: Case, below: float, above: float) -> bool:
    rule, margin, p = case
    return p is not None and (rule in CROSS or -below <= margin < above)


def rates(
    sets: dict[str, tuple[list[Case], list[Case]]],
    below: float,
    above: float,
    minimum: dict[str, float],
) -> dict[str, tuple[float, float, float]]:
    out = {}
    for name, (gold, without) in sets.items():
        refused = sum(not answers(c, below, above, minimum) for c in gold) / len(gold)
        answered = sum(answers(c, below, above, minimum) for c in without) / len(without)
        reach = sum(judged(c, below, above) for c in gold + without) / (2 * len(gold))
        out[name] = (refused, answered, reach)
    return out


def language_of(name: str, gold: list[Case]) -> str:
    rules = ["cross" if rule in CROSS else rule for rule, *_ in gold]
    return max(set(rules), key=rules.count)


def choose(sets: dict[str, tuple[list[Case], list[Case]]]) -> dict[str, Any]:
    languages = {name: language_of(name, gold) for name, (gold, _) in sets.items()}
    best: dict[str, Any] | None = None
    for below, above in product(BANDS, BANDS):
        minimum = {}
        for language in ("en", "zh", "cross"):
            mine = {n: s for n, s in sets.items() if languages[n] == language}
            if not mine:
                minimum[language] = 0.5
                continue

            def error(
                p: float, mine: Any = mine, below: float = below, above: float = above
            ) -> float:
                trial = {"en": p, "zh": p, "cross": p}
                scored = rates(mine, below, above, trial)
                return sum(r + a for r, a, _ in scored.values()) / len(scored)

            minimum[language] = min(PROBABILITIES, key=error)
        scored = rates(sets, below, above, minimum)
        worst = max(r + a for r, a, _ in scored.values())
        reach = sum(x for *_, x in scored.values()) / len(scored)
        objective = worst + COST * reach
        if best is None or objective < best["objective"]:
            best = {
                "band_below": below,
                "band_above": above,
                "min_probability": minimum,
                "objective": round(objective, 4),
                "rates": {n: [round(v, 3) for v in r] for n, r in scored.items()},
            }
    assert best is not None
    return best


def main() -> None:
    settings = Settings()
    sets: dict[str, tuple[list[Case], list[Case]]] = {}
    for path in map(Path, sys.argv[1:]):
        name = path.stem.removeprefix("answer-records-")
        gold, without = cases(json.loads(path.read_text()), settings)
        if name == "corpus":  # two languages: each its own set
            for language in ("en", "zh"):
                pick = [i for i, c in enumerate(gold) if c[0] == language]
                sets[f"corpus_{language}"] = ([gold[i] for i in pick], [without[i] for i in pick])
        else:
            sets[name] = (gold, without)
    sets = {n: s for n, s in sets.items() if len(s[0]) >= MIN_QUESTIONS}
    chosen = choose(sets)
    left_out = {}
    for name in sets:
        others = {n: s for n, s in sets.items() if n != name}
        if not others:
            continue
        refit = choose(others)
        scored = rates(
            {name: sets[name]}, refit["band_below"], refit["band_above"], refit["min_probability"]
        )[name]
        left_out[name] = {
            "band": [refit["band_below"], refit["band_above"]],
            "min_probability": refit["min_probability"],
            "rates": [round(v, 3) for v in scored],
        }
    result = {
        "questions": {n: len(s[0]) for n, s in sets.items()},
        "chosen": chosen,
        "left_out": left_out,
    }
    out = REPO / "bench" / "results" / "judge-calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

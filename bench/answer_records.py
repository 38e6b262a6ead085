"""Per-question answer records (coverage, answered, gold answer found) for the refusal
calibration and the answer-quality table.

    .venv/bin/python bench/answer_records.py xquad_en xquad_zh cmrc2018_dev rgb_zh_int corpus \
        --limit 1000

Writes bench/results/answer-records-<set>.json. Run it with the refusal thresholds at 0
(RAG_ANSWER__MIN_COVERAGE_EN=0 RAG_ANSWER__MIN_COVERAGE_ZH=0) so every question's coverage is
recorded without a refusal cutting it short; `calibrate_refusal.py` then sweeps the thresholds.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from _common import EVAL_DIR, REPO

from evaluation.answers import answer_records
from rag_service.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sets", nargs="+", help="Names under ../shared/eval, or 'corpus'.")
    parser.add_argument("--limit", type=int, default=None, help="First N questions of a set.")
    parser.add_argument("--every", type=int, default=1, help="Each n-th question (a sample).")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    for name in args.sets:
        folder = REPO / "corpus" if name == "corpus" else EVAL_DIR / name
        _, records = answer_records(folder, Settings(), cache, args.limit, args.every)
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out / f"answer-records-{name}.json"
        out.write_text(json.dumps([asdict(r) for r in records]) + "\n")
        print(f"{name}: {len(records)} records -> {out}")


if __name__ == "__main__":
    main()

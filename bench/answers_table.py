"""The answer table of docs/evaluation.md from `rag eval-answers --json` outputs.

.venv/bin/python bench/answers_table.py bench/results/answers-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("answer_in_response", "gold answer in answer"),
    ("exact_match", "EM"),
    ("f1", "F1"),
    ("refused_answerable", "refuses answerable"),
    ("answered_unanswerable", "answers unanswerable"),
    ("answered_unanswerable_with_gold", "… with a gold answer"),
    ("answer_chars", "answer chars"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
]


def main() -> None:
    print("| set | questions | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for path in sorted(map(Path, sys.argv[1:])):
        row = json.loads(path.read_text())
        cells = [
            f"{row[k]:.0f}" if k.endswith(("_ms", "_chars")) else f"{row[k]:.3f}"
            for k, _ in COLUMNS
        ]
        print(f"| {row['dataset']} | {row['questions']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

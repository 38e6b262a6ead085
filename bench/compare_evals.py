"""One metric of `ours` side by side across result folders of `bench/eval_all.sh`, e.g. the
default embedder against the one before it:

    .venv/bin/python bench/compare_evals.py ndcg@10 e5-int8=bench/results \
        e5-fp32=bench/results/e5-fp32 MiniLM=bench/results/minilm

Prints a Markdown table: a row per set, a column per folder (a blank where a folder lacks the
set), and the difference of each later column from the first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def ours(folder: Path, metric: str) -> dict[str, float]:
    found = {}
    for path in sorted(folder.glob("eval-*.json")):
        if path.stat().st_size:
            result = json.loads(path.read_text())
            found[result["dataset"]] = float(result["systems"]["ours"][metric])
    return found


def main(metric: str, columns: list[str]) -> None:
    labelled = [(c.split("=", 1)[0], ours(Path(c.split("=", 1)[1]), metric)) for c in columns]
    first_label, first = labelled[0]
    others = labelled[1:]
    head = [first_label] + [f"{label} (Δ)" for label, _ in others]
    print(f"{metric}, ours:\n\n| set | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for name in sorted(set().union(*(values for _, values in labelled))):
        cells = [f"{first[name]:.3f}" if name in first else ""]
        for _, values in others:
            if name not in values:
                cells.append("")
            elif name in first:
                cells.append(f"{values[name]:.3f} ({values[name] - first[name]:+.3f})")
            else:
                cells.append(f"{values[name]:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

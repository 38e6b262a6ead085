"""Print `rag eval --json` results as the Markdown tables in docs/evaluation.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SYSTEMS = ["ours", "bm25", "dense", "langchain_ensemble"]


def main(paths: list[str]) -> None:
    results = [json.loads(Path(p).read_text()) for p in paths]
    for metric in ["ndcg@10", "recall@5", "recall@1", "mrr@10"]:
        print(f"\n{metric}:\n")
        print("| set | questions | " + " | ".join(SYSTEMS) + " |")
        print("|---|---|" + "---|" * len(SYSTEMS))
        for r in results:
            cells = [
                f"{r['systems'][s][metric]:.3f}" if s in r["systems"] else "–" for s in SYSTEMS
            ]
            best = max(float(c) for c in cells if c != "–")
            cells = [f"**{c}**" if c != "–" and float(c) == best else c for c in cells]
            print(f"| {r['dataset']} | {r['questions']} | " + " | ".join(cells) + " |")
    print("\nlatency p50 / p95 ms (query vectors cached):\n")
    print("| set | " + " | ".join(SYSTEMS) + " |")
    print("|---|" + "---|" * len(SYSTEMS))
    for r in results:
        cells = [
            f"{r['systems'][s]['p50_ms']:.1f} / {r['systems'][s]['p95_ms']:.1f}"
            if s in r["systems"]
            else "–"
            for s in SYSTEMS
        ]
        print(f"| {r['dataset']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Paired bootstrap (95%) of the English recipe (BM25/max + 0.5 * cosine) against the shipped
fusion, with exact scores for every candidate and with the list-minimum stand-in.

    python bench/research/en_bootstrap.py    # prints (needs the dumps of research/dump.py)
"""

from __future__ import annotations

from bigram import bootstrap, per_question
from combined import combined
from common import load, ours

if __name__ == "__main__":
    for name in ("xquad_en", "scifact_train", "corpus"):
        data = load(name)
        shipped = per_question(data, ours)
        for fill in ("exact", "list_min"):
            mine = per_question(data, combined(0.5, 1.0, fill))
            print(
                name,
                fill,
                "nDCG@10/R@5",
                mine.mean(axis=0).round(4),
                "ours",
                shipped.mean(axis=0).round(4),
                "CI95 nDCG",
                [round(x, 4) for x in bootstrap(mine[:, 0] - shipped[:, 0])],
                "CI95 R@5",
                [round(x, 4) for x in bootstrap(mine[:, 1] - shipped[:, 1])],
            )

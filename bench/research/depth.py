"""How deep the zh bigram rerank must reach: depth 5, 10, 20, 50 of the shipped fusion.

python bench/research/depth.py       # prints a table (needs the dumps of research/dump.py)
"""

from __future__ import annotations

from bigram import bigram_ranker
from common import baselines, load, score, table

SETS = ["xquad_zh", "cmrc2018_dev", "rgb_zh_int", "corpus"]

if __name__ == "__main__":
    base = baselines(SETS)
    rows = {
        f"depth {d} lam {lam}": {s: score(load(s), bigram_ranker(lam, d)) for s in SETS}
        for d in (5, 10, 20, 50)
        for lam in (0.7, 1.0, 1.5)
    }
    print(table(rows, base, SETS))

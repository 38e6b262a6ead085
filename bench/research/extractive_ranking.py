"""How should the extractive answerer rank the sentences of the top passages? By the question's
rarer words they hold (the answerer's own score), by the question's cosine with them, or by
words (as a share of the best sentence's) + w x cosine. Gold documents indexed, nothing refused;
the share of answers (two sentences) that hold a gold answer.

    .venv/bin/python bench/research/extractive_ranking.py corpus xquad_en cmrc2018_dev xquad_zh2en

Prints one line per set: the share for words alone, then for each weight, then cosine alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import EVAL_DIR, REPO

from evaluation.answers import contains_answer
from evaluation.runner import prepared_set
from rag_service.llms.extractive import RANK_DISCOUNT_COSINE, ExtractiveAnswerer
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.settings import Settings

WEIGHTS = [1.0, 2.0, 4.0, 8.0]
QUESTIONS = 300


def main() -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    prompts = PromptBuilder(load_templates(None))
    by_words = ExtractiveAnswerer(2)  # no sentence scorer: the words' score alone
    for name in sys.argv[1:]:
        folder = REPO / "corpus" if name == "corpus" else EVAL_DIR / name
        columns = ["words", *(f"words + {w:g} x cosine" for w in WEIGHTS), "cosine"]
        hits = dict.fromkeys(columns, 0)
        asked = 0
        with prepared_set(folder, settings, cache, QUESTIONS) as p, p.service.current() as served:
            for q in p.eval_set.questions:
                if not q.answers:
                    continue
                asked += 1
                found = p.service.search_served(served, q.question, 5, None)
                prompt = prompts.build(q.question, [x.chunk for x in found.passages], ())
                candidates = by_words.candidates(prompt)
                if not candidates:
                    continue
                words = np.array([c.score for c in candidates])
                rank = np.array([c.n - 1 for c in candidates])
                vectors = p.embedder.embed_documents([c.text for c in candidates])
                cosine = vectors @ p.embedder.embed_query(q.question) - RANK_DISCOUNT_COSINE * rank
                share = words / (words.max() or 1.0)
                scores = {"words": words, "cosine": cosine}
                scores |= {f"words + {w:g} x cosine": share + w * cosine for w in WEIGHTS}
                for column, score in scores.items():
                    top = [i for i in np.argsort(-score)[:2] if column != "words" or words[i] > 0]
                    answer = " ".join(candidates[i].text for i in sorted(top))
                    hits[column] += contains_answer(answer, q.answers)
        print(name, asked, {c: round(h / asked, 3) for c, h in hits.items()}, flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Answer quality and refusal rates with the configured LLM (by default the extractive answerer)
# on every development set with short answers and on the shipped corpus; keeps the JSON.
# The first 1000 questions of the large sets, to keep a run under a quarter of an hour.
# OUT picks the folder (default bench/results), as for eval_all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
.venv/bin/rag eval-answers corpus --json > "$out/answers-corpus.json"
for set in xquad_en xquad_zh xquad_zh2en xquad_en2zh cmrc2018_dev rgb_zh_int; do
  .venv/bin/rag eval-answers "../shared/eval/$set" --limit 1000 --json > "$out/answers-$set.json"
done
.venv/bin/python bench/answers_table.py "$out"/answers-*.json

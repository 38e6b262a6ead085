#!/usr/bin/env bash
# Runs `rag eval --baselines` on every development set and the shipped corpus, keeping the JSON.
# The embedder and the rest come from the environment, as for the service; OUT picks the folder:
#   bash bench/eval_all.sh                                          # the default settings
#   RAG_EMBEDDER__BACKEND=e5 OUT=bench/results/e5 bash bench/eval_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
for set in xquad_en xquad_zh xquad_zh2en cmrc2018_dev scifact_train rgb_zh_int; do
  .venv/bin/rag eval "../shared/eval/$set" --baselines --json > "$out/eval-$set.json"
done
.venv/bin/rag eval corpus --baselines --json > "$out/eval-corpus.json"
.venv/bin/python bench/eval_table.py "$out"/eval-*.json

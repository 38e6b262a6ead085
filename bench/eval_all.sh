#!/usr/bin/env bash
# Runs `rag eval --baselines` on every development set and the shipped corpus, keeping the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
for set in xquad_en xquad_zh cmrc2018_dev scifact_train rgb_zh_int; do
  .venv/bin/rag eval "../shared/eval/$set" --baselines --json > "bench/results/eval-$set.json"
done
.venv/bin/rag eval corpus --baselines --json > bench/results/eval-corpus.json
.venv/bin/python bench/eval_table.py bench/results/eval-*.json

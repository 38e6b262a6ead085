#!/usr/bin/env bash
# `rag eval` where the pair of languages picks the fusion (English questions over Chinese
# documents and the reverse, Traditional script) and on the same-language sets it must leave as
# they were: after (the defaults) and before (RAG_RETRIEVAL__PASSAGE_LANGUAGE_DEPTH=0: the
# query's language alone). The derived sets are built at load time (evaluation/datasets.py).
#   bash bench/eval_pairs.sh && .venv/bin/python bench/eval_table.py bench/results/pairs/after-*.json
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results/pairs}"
rag="${RAG:-.venv/bin/rag}"
sets="${EVAL:-../shared/eval}"
mkdir -p "$out"
for set in xquad_en2zh xquad_zh2en xquad_en xquad_zh cmrc2018_dev xquad_zh_hant xquad_hant2hans corpus; do
  dir="$sets/$set"
  [ "$set" = corpus ] && dir=corpus
  RAG_RETRIEVAL__PASSAGE_LANGUAGE_DEPTH=0 $rag eval "$dir" --json > "$out/before-$set.json"
  $rag eval "$dir" --json > "$out/after-$set.json"
done

#!/usr/bin/env bash
# Issue 15, benchmark (a): default `cardwatch train` vs XGBoost with scale_pos_weight and
# scikit-learn random forests (100 trees; unlimited depth and depth 20) on generated worlds unlike
# the default one — 20,000 cards with 0.2 % fraud and no coordinates; other pattern shares; and
# that world's features as a numeric --table export — each with a time split (train days 1–21,
# 7-day label delay, test days 29–35) on exactly the same rows for every model. Goals: cardwatch's
# AP ≥ the best peer's, its ROC AUC within 0.005 of the best. Prints a markdown report and writes
# it to benchmarks/worlds-result.md; goal misses are FAIL lines, the exit status stays 0.
#
#   benchmarks/worlds.sh                            # builds the CLI into .build-peers
#   CARDWATCH=/path/to/cardwatch benchmarks/worlds.sh
#
# Knobs: WORLDS (default sparse,shifted,table), SPARSE_CARDS (20000), SHIFTED_CARDS (3000),
# RF_DEPTHS (the random forests' maximum depths, default none,20; RF_DEPTHS=20 skips the
# unlimited-depth forest, the slowest fit by far), OUT (the report), VENV (the Python
# environment, .venv-bench). Run time: see BENCHMARKS.md (about 35 minutes on the shared 2 cores).
source "$(dirname "$0")/bench-env.sh"
out=${OUT:-$repo/benchmarks/worlds-result.md}
started=$(date +%s)
py "$repo/benchmarks/worlds.py" --cardwatch "$bin" --workdir "$tmp" --out "$out" \
  --worlds "${WORLDS:-sparse,shifted,table}" --sparse-cards "${SPARSE_CARDS:-20000}" \
  --shifted-cards "${SHIFTED_CARDS:-3000}" --rf-depths "${RF_DEPTHS:-none,20}" --json-out "${out%.md}.json"
step "done in $(($(date +%s) - started)) s; report in ${out#"$repo"/}"

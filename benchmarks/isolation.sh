#!/usr/bin/env bash
# Issue 15 goal (c): cardwatch's Isolation Forest against scikit-learn's IsolationForest
# (300 trees) on the same replayed feature table of the generated world (30 days × 500
# cards, seed 1): train days 1–21, test days 22–30, labels only for scoring. ROC AUC and
# AP (median of seeds), fit time (median of fits). Prints a markdown report and writes it
# to benchmarks/isolation-result.md; goal misses are FAIL lines, not a non-zero exit.
#
#   benchmarks/isolation.sh                      # builds the CLI into .build-peers
#   CARDWATCH=/path/to/cardwatch benchmarks/isolation.sh
#
# Python lives in .venv-bench/ (benchmarks/bench-env.sh creates it on first use). Knobs: VENV, CARDS, DAYS, SEED, SEEDS, REPEATS, OUT; FEATURE_CHECK=1 also
# measures the isolation score as a 30th feature of the GBDT.
cards=${CARDS:-500}
days=${DAYS:-30}
seed=${SEED:-1}
seeds=${SEEDS:-5}
repeats=${REPEATS:-3}
# The CLI in $bin, the Python environment and py, a scratch $tmp: as for the other issue-15 benchmarks.
source "$(dirname "$0")/bench-env.sh"
out=${OUT:-$repo/benchmarks/isolation-result.md}

step "cardwatch generate --days $days --cards $cards --seed $seed"
"$bin" generate --days "$days" --cards "$cards" --seed "$seed" --quiet --out "$tmp/history.jsonl" || fail "generate failed"
step "cardwatch features"
"$bin" features --in "$tmp/history.jsonl" --out "$tmp/table.csv" --quiet || fail "features failed"

py "$repo/benchmarks/isolation.py" \
  --cardwatch "$bin" --table "$tmp/table.csv" --workdir "$tmp" --out "$out" --seeds "$seeds" --repeats "$repeats" \
  --train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 \
  --world "cardwatch generate --days $days --cards $cards --seed $seed, then cardwatch features" ${FEATURE_CHECK:+--feature-check}
step "report in ${out#"$repo"/}"

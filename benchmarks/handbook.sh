#!/usr/bin/env bash
# Issue 15, benchmark (b): the Fraud Detection Handbook's simulated data and protocol (train
# 2018-07-25..31, a 7-day delay, test 2018-08-08..14): default `cardwatch train --data` vs
# scikit-learn's RandomForest (100 trees, depth 20) and XGBoost (defaults; depth 3, learning rate
# 0.05, 600 trees) on cardwatch's own 29 features of the same rows. Goals: AUC ≥ 0.90, AP ≥ 0.70,
# card precision@100 ≥ 0.30 (the book's published best: 0.871 / 0.658 / 0.291). Prints a markdown
# report and writes it to benchmarks/handbook-result.md; goal misses are FAIL lines, exit status 0.
#
#   HANDBOOK_DATA=DIR benchmarks/handbook.sh
#   CARDWATCH=/path/to/cardwatch HANDBOOK_DATA=DIR benchmarks/handbook.sh
#
# HANDBOOK_DATA: the handbook's raw simulated transactions, one pandas pickle per day
# (YYYY-MM-DD.pkl, from its simulated-data-raw repository): a directory of them, or a git
# repository (bare or not) holding them under data/. Knobs: HANDBOOK_FROM (first day converted,
# default 2018-06-16: the features' warm-up, see handbook.py), OUT, VENV. About 2 minutes on 2 cores.
source "$(dirname "$0")/bench-env.sh"
data=${HANDBOOK_DATA:-}
if [[ -z "$data" ]]; then
  for guess in /work/.mirror/Fraud-Detection-Handbook+simulated-data-raw/repo "$repo/../simulated-data-raw"; do
    [[ -e "$guess" ]] && { data=$guess; break; }
  done
fi
[[ -n "$data" && -e "$data" ]] || fail "set HANDBOOK_DATA to the handbook's simulated-data-raw files (a directory of YYYY-MM-DD.pkl, or its git repository)"
out=${OUT:-$repo/benchmarks/handbook-result.md}
started=$(date +%s)
py "$repo/benchmarks/handbook.py" --cardwatch "$bin" --data "$data" --workdir "$tmp" --out "$out" \
  --from "${HANDBOOK_FROM:-2018-06-16}" --json-out "${out%.md}.json"
step "done in $(($(date +%s) - started)) s; report in ${out#"$repo"/}"

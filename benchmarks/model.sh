#!/usr/bin/env bash
# Issue #4's own benchmarks, in a release build: one-row scoring latency of a 300-tree
# model, feature update + scoring of one transaction, TreeSHAP (`cardwatch bench model`,
# median of 5 passes), and the DESIGN.md budget "training on 1.75 M transactions
# (features + GBDT) ≤ 60 s": the whole `cardwatch train --data` command on ~1.75 M
# generated transactions (20,000 cards × 28 days), median of 3 runs.
RUNS=${RUNS:-3}
source "$(dirname "$0")/common.sh"
echo "## cardwatch bench model --trees 300 --runs 5"
"$bin" bench model --trees 300 --runs 5
echo
"$bin" generate --days 28 --cards 20000 --seed 3 --quiet --out "$tmp/big.jsonl"
n=$(wc -l < "$tmp/big.jsonl")
echo "## cardwatch train --data <$n transactions> --test-days 1 --delay-days 0 (read + validate + features + GBDT + evaluation), $runs runs"
for i in $(seq "$runs"); do
  s=$(date +%s.%N)
  "$bin" train --data "$tmp/big.jsonl" --test-days 1 --delay-days 0 --no-register --json > "$tmp/m$i.json"
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
done | median | xargs printf "wall time, median: %.1f s\n"
python3 -c "import json; m=json.load(open('$tmp/m1.json')); print('train rows %d, trees %d, in-process training %.1f s, test AUC %.4f, AP %.4f' % (m['train_rows'], m['trees'], m['training_seconds'], m['roc_auc'], m['average_precision']))"

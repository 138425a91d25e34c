#!/usr/bin/env bash
# Issue #3's benchmarks, in a release build: feature-engine updates per second and
# state per card with 500 and with 1,000,000 cards (`cardwatch bench features`,
# median of 5 runs on one core), then the replay of 30 days of 500 cards to a
# training table through the CLI (median of 5 runs).
RUNS=${RUNS:-5}
source "$(dirname "$0")/common.sh"
echo "## cardwatch bench features --cards 500 --count 2000000 --runs $runs"
"$bin" bench features --cards 500 --count 2000000 --runs "$runs"
echo
echo "## cardwatch bench features --cards 1000000 --count 3000000 --runs $runs"
"$bin" bench features --cards 1000000 --count 3000000 --runs "$runs"
echo
"$bin" generate --days 30 --seed 1 --quiet --out "$tmp/h.jsonl"
n=$(wc -l < "$tmp/h.jsonl")
for i in $(seq "$runs"); do
  s=$(date +%s.%N)
  "$bin" features --in "$tmp/h.jsonl" --out "$tmp/table.csv" --quiet
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
done | median | xargs -I{} echo "{} $n" | awk '{printf "## replay: cardwatch features --in <30 days, 500 cards: %d transactions> --out table.csv: %.3f s median, %.0f rows/s (read + validate + sort + features + CSV)\n", $2, $1, $2/$1}'

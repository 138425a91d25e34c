#!/usr/bin/env bash
# Issue #5's benchmarks, in a release build:
# 1. end-to-end backfill throughput: `cardwatch import` of ~1.06 M generated transactions
#    (28 days × 12,000 cards) through the durable log, features, scoring, alerts (with
#    TreeSHAP reasons) and the warehouse, on an empty data directory that already holds a
#    model (median of RUNS runs);
# 2. latency at 50 tx/s live: `cardwatch run --tps 50` for DURATION seconds, from each
#    record's append to the log to the commit of its decision (the run prints p50/p99);
# 3. peak resident memory (`/usr/bin/time -v`) of an import with 500 cards (30 days) and
#    with 1,000,000 cards (1 day, ~3 M transactions).
RUNS=${RUNS:-3}
DURATION=${DURATION:-60}
source "$(dirname "$0")/common.sh"

# One bootstrap (a generated history, training, promotion); every run below copies its registry.
"$bin" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$bin" import "$tmp/tiny.jsonl" --data-dir "$tmp/seed" --quiet --json --max-event-age none > /dev/null
fresh() { rm -rf "$1"; mkdir -p "$1"; cp "$tmp/seed/registry.sqlite" "$1/"; }

"$bin" generate --days 28 --cards 12000 --seed 5 --quiet --out "$tmp/big.jsonl"
n=$(wc -l < "$tmp/big.jsonl")
# Each run's data directory (0.7 GB) is removed before the next and the page cache flushed, so
# that no run pays for writing back an earlier one's files.
sync
echo "## cardwatch import <$n transactions> (log, features, scoring, alerts, warehouse), $runs runs"
for i in $(seq "$runs"); do
  fresh "$tmp/d"
  "$bin" import "$tmp/big.jsonl" --data-dir "$tmp/d" --quiet --json --max-event-age none > "$tmp/i$i.json"
  [ "$i" = 1 ] && du -h "$tmp/d/log.sqlite" | awk '{print $1}' > "$tmp/size"
  rm -rf "$tmp/d"
  sync
  python3 -c "import json; m=json.load(open('$tmp/i$i.json')); print(m['transactions_per_second'])"
done | tee "$tmp/tps" | tr '\n' ' '
echo
median < "$tmp/tps" | xargs printf "throughput, median: %.0f transactions/s\n"
python3 -c "import json; m=json.load(open('$tmp/i1.json')); print('run 1: %d processed, %d alerts, %.2f s' % (m['processed'], m['alerts'], m['seconds']))"
echo "data file after one import: $(cat "$tmp/size")"
echo

echo "## cardwatch run --tps 50 for $DURATION s"
fresh "$tmp/live"
timeout -s INT "$DURATION" "$bin" run --data-dir "$tmp/live" --tps 50 --quiet 2> "$tmp/live.err" || true
grep "^latency" "$tmp/live.err"
echo

peak() {  # peak RSS of an import, in MiB
  fresh "$tmp/m"
  /usr/bin/time -v "$bin" import "$1" --data-dir "$tmp/m" --quiet --json --max-event-age none 2> "$tmp/time.err" > "$tmp/m.json"
  awk '/Maximum resident set size/ {printf "%.0f MiB", $6/1024}' "$tmp/time.err"
  python3 -c "import json; m=json.load(open('$tmp/m.json')); print(', %d transactions, %.0f transactions/s' % (m['processed'], m['transactions_per_second']))"
}
echo "## peak resident memory of an import"
"$bin" generate --days 30 --cards 500 --seed 7 --quiet --out "$tmp/small.jsonl"
printf "500 cards, 30 days: "; peak "$tmp/small.jsonl"
rm -f "$tmp/small.jsonl"
"$bin" generate --days 1 --cards 1000000 --seed 8 --quiet --out "$tmp/million.jsonl"
printf "1,000,000 cards, 1 day: "; peak "$tmp/million.jsonl"

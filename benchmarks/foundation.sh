#!/usr/bin/env bash
# Issue #2's benchmarks, in a release build: the generator and the schema codecs in
# process (`cardwatch bench`, median of 5 runs each), then the CLI end to end on files
# (median of 5 runs each): backfill generation to a JSON Lines file, and validation of it.
RUNS=${RUNS:-5}
source "$(dirname "$0")/common.sh"
echo "## in process: cardwatch bench codec --count 1000000 --runs $runs"
"$bin" bench codec --count 1000000 --runs "$runs"
echo
echo "## CLI on files, 2,000,000 transactions (500 cards), median of $runs"
for i in $(seq "$runs"); do
  s=$(date +%s.%N)
  "$bin" generate --count 2000000 --seed "$i" --quiet --out "$tmp/g.jsonl"
  e=$(date +%s.%N)
  echo "2000000 / ($e - $s)" | bc -l
done | median | xargs printf "generate --count 2000000 --out FILE.jsonl: %.0f transactions/s\n"
for i in $(seq "$runs"); do
  s=$(date +%s.%N)
  "$bin" validate "$tmp/g.jsonl" >/dev/null
  e=$(date +%s.%N)
  echo "2000000 / ($e - $s)" | bc -l
done | median | xargs printf "validate FILE.jsonl (read + parse + validate + duplicate check): %.0f records/s\n"
echo "file size: $(du -m "$tmp/g.jsonl" | cut -f1) MiB"

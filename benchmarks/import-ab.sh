#!/usr/bin/env bash
# Used for BENCHMARKS.md "Issue 16 — the alerts topic". Release binaries as arguments.
# Interleaved import throughput: OLD vs NEW binary, same data, ROUNDS rounds.
set -euo pipefail
OLD=$1; NEW=$2; ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$NEW" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$NEW" import "$tmp/tiny.jsonl" --data-dir "$tmp/seed" --quiet --json --max-event-age none > /dev/null
"$NEW" generate --days 28 --cards 12000 --seed 5 --quiet --out "$tmp/big.jsonl"
echo "date: $(date -u +%FT%RZ) load: $(cut -d' ' -f1-3 /proc/loadavg) rows: $(wc -l < "$tmp/big.jsonl")"
for r in $(seq "$ROUNDS"); do
  for which in old new; do
    b=$OLD; [ $which = new ] && b=$NEW
    rm -rf "$tmp/d"; mkdir -p "$tmp/d"; cp "$tmp/seed/registry.sqlite" "$tmp/d/"; sync
    s=$(date +%s.%N)
    "$b" import "$tmp/big.jsonl" --data-dir "$tmp/d" --quiet --json --max-event-age none > "$tmp/o.json"
    e=$(date +%s.%N)
    python3 -c "import json,sys; m=json.load(open('$tmp/o.json')); print('$which round $r: %.0f tx/s (wall %.1f s), alerts %s' % (m.get('accepted',0)/($e-$s), $e-$s, m.get('alerts')))"
    [ $which = new ] && echo "   alerts topic records: $(python3 -c "import sqlite3; print(sqlite3.connect('$tmp/d/log.sqlite').execute(\"select count(*) from records where topic='alerts'\").fetchone()[0])")"
  done
done

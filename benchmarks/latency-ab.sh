#!/usr/bin/env bash
# Latency at 50 tx/s, two release binaries interleaved: `benchmarks/latency-ab.sh OLD NEW`.
# Each round runs `cardwatch run --tps 50` for DURATION seconds on a fresh data directory
# holding the same bootstrapped model, OLD then NEW; the run prints the append → committed
# decision latency (p50, p99, max) when it stops.
set -euo pipefail
OLD=$1; NEW=$2; ROUNDS=${ROUNDS:-2}; DURATION=${DURATION:-30}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$NEW" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$NEW" import "$tmp/tiny.jsonl" --data-dir "$tmp/seed" --quiet --json --max-event-age none > /dev/null
echo "date: $(date -u +%FT%RZ) load: $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds of ${DURATION} s at 50 tx/s"
for r in $(seq "$ROUNDS"); do
  for which in old new; do
    b=$OLD; [ $which = new ] && b=$NEW
    rm -rf "$tmp/d"; mkdir -p "$tmp/d"; cp "$tmp/seed/registry.sqlite" "$tmp/d/"
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    timeout -s INT "$DURATION" "$b" run --data-dir "$tmp/d" --tps 50 --port "$port" --quiet 2> "$tmp/err" || true
    echo "$which round $r: $(grep '^latency, append to committed decisions' "$tmp/err")"
  done
done

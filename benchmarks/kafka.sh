#!/usr/bin/env bash
# Issue 18: Cardwatch on Kafka (librdkafka's mock cluster on this machine), same data, same
# binary, interleaved rounds:
#   (a) one instance deciding what waits in the transactions topic, vs `import` over the SQLite
#       log: into the same PostgreSQL warehouse, and into SQLite (the embedded import, and one
#       Kafka instance alone on its SQLite warehouse);
#   (b) two instances each pinned to one core (taskset) vs one instance on one core;
#   (c) synchronous POST /v1/transactions through Kafka at a fixed offered load (openloop).
# A throwaway PostgreSQL (scripts/postgres.sh, fsync on) holds the warehouses.
# usage: ROUNDS=3 benchmarks/kafka.sh CARDWATCH_WITH_KAFKA [DAYS] [CARDS]
#   (swift build -c release --traits Kafka --product cardwatch; .build/release/cardwatch)
set -euo pipefail
BIN=$1; DAYS=${2:-14}; CARDS=${3:-6000}; ROUNDS=${ROUNDS:-3}; PORT=${PORT:-55498}
PARTITIONS=${PARTITIONS:-16}; RATES=${RATES:-500 2000}; SECONDS_LOAD=${SECONDS_LOAD:-20}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); chmod 755 "$tmp"
pgdir=$("$here/scripts/postgres.sh" start "$PORT")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$here/scripts/postgres.sh" stop "$pgdir" || true
  rm -rf "$tmp" "$pgdir"
}
trap cleanup EXIT
admin="postgres://ci@127.0.0.1:$PORT/postgres"
db() { psql "$admin" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"; echo "postgres://ci@127.0.0.1:$PORT/$1"; }
# A registry with a promoted model, copied into each data directory (no bootstrap in the timings).
"$BIN" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$BIN" import "$tmp/tiny.jsonl" --data-dir "$tmp/seed" --quiet --json --max-event-age none > /dev/null
"$BIN" generate --days "$DAYS" --cards "$CARDS" --seed 5 --quiet --out "$tmp/big.jsonl"
rows=$(wc -l < "$tmp/big.jsonl")
echo "date: $(date -u +%FT%RZ) machine: $(nproc) cores, $(uname -r) load: $(cut -d' ' -f1-3 /proc/loadavg) rows: $rows partitions: $PARTITIONS"
fresh_dir() { rm -rf "$1"; mkdir -p "$1"; cp "$tmp/seed/registry.sqlite" "$1/"; }
# A mock cluster in the background: sets $bootstrap and $cluster.
start_cluster() {
  "$BIN" kafka mock-cluster --partitions "$PARTITIONS" < /dev/null > "$tmp/cluster.out" 2> /dev/null &
  cluster=$!; pids+=("$cluster")
  for _ in $(seq 50); do [ -s "$tmp/cluster.out" ] && break; sleep 0.1; done
  bootstrap=$(head -1 "$tmp/cluster.out")
}
# Decided rows in a warehouse.
decided() { psql "$1" -Atc "SELECT COUNT(*) FROM silver_transactions" 2>/dev/null || echo 0; }
# Starts instance $1 (taskset CPU list $2, or "") on warehouse $3; sets $instance.
start_instance() {
  fresh_dir "$tmp/i$1"
  local pin=(); [ -n "$2" ] && pin=(taskset -c "$2")
  "${pin[@]}" "$BIN" run --log "kafka://$bootstrap" --warehouse "$3" --registry sqlite --data-dir "$tmp/i$1" \
    --no-generator --port "$((PORT + 10 + $1))" --quiet 2> "$tmp/i$1.err" &
  instance=$!; pids+=("$instance")
}
# Waits until warehouse $1 holds $2 decisions; prints the seconds since $3 (date +%s.%N) and
# the seconds from the first committed decision seen to the last (the group's join left out;
# with pipelined commits the rows' decided_at runs ahead of their commits, so it is not used).
wait_decided() {
  local first=""
  while true; do
    n=$(decided "$1")
    [ -z "$first" ] && [ "$n" -gt 0 ] && first=$(date +%s.%N)
    [ "$n" -ge "$2" ] && break
    sleep 0.05
  done
  python3 -c "import time; e = time.time(); print('%.2f %.2f' % (e - $3, e - ${first:-$3}))"
}

for r in $(seq "$ROUNDS"); do
  # (a) the SQLite log's import, into SQLite and into PostgreSQL.
  for which in sqlite postgres; do
    fresh_dir "$tmp/d"
    warehouse=()
    [ $which = postgres ] && warehouse=(--warehouse "$(db bench_import)" --registry sqlite)
    s=$(date +%s.%N)
    "$BIN" import "$tmp/big.jsonl" --data-dir "$tmp/d" --quiet --json --max-event-age none "${warehouse[@]}" > "$tmp/o.json"
    e=$(date +%s.%N)
    python3 -c "print('(a) round $r: import, SQLite log → $which warehouse: %.0f tx/s' % ($rows / ($e - $s)))"
  done
  # (a) Kafka: the file produced first, then one instance decides it all.
  start_cluster a
  s=$(date +%s.%N)
  "$BIN" import "$tmp/big.jsonl" --log "kafka://$bootstrap" --quiet --max-event-age none > /dev/null
  e=$(date +%s.%N)
  python3 -c "print('(a) round $r: import → Kafka topic (produce only): %.0f records/s' % ($rows / ($e - $s)))"
  url=$(db bench_kafka)
  s=$(date +%s.%N)
  start_instance 0 "" "$url"
  read -r t d < <(wait_decided "$url" "$rows" "$s")
  python3 -c "print('(a) round $r: one Kafka instance → postgres warehouse: %.0f tx/s while deciding (%s s from its first commit seen), %.0f tx/s from its start (%s s, the join included)' % ($rows / $d, '$d', $rows / $t, '$t'))"
  kill "$instance"; wait "$instance" 2>/dev/null || true
  kill "$cluster"; wait "$cluster" 2>/dev/null || true
  # (a) Kafka: one instance alone on the embedded SQLite warehouse (DATA_DIR/kafka/log.sqlite).
  start_cluster a2
  "$BIN" import "$tmp/big.jsonl" --log "kafka://$bootstrap" --quiet --max-event-age none > /dev/null
  fresh_dir "$tmp/alone"
  s=$(date +%s.%N)
  "$BIN" run --log "kafka://$bootstrap" --data-dir "$tmp/alone" --no-generator --port "$((PORT + 9))" --quiet \
    2> "$tmp/alone.err" &
  instance=$!; pids+=("$instance")
  python3 - "$tmp/alone/kafka/log.sqlite" "$rows" "$s" "$r" <<'PY'
import os, sqlite3, sys, time
path, rows, start, r = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def count():
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM silver_transactions").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0
while count() == 0:
    time.sleep(0.05)
first = time.time()
while count() < rows:
    time.sleep(0.05)
end = time.time()
print(f"(a) round {r}: one Kafka instance → SQLite warehouse: {rows / (end - first):.0f} tx/s while deciding "
      f"({end - first:.2f} s from its first decision seen), {rows / (end - start):.0f} tx/s from its start "
      f"({end - start:.2f} s, the join included)")
PY
  kill "$instance"; wait "$instance" 2>/dev/null || true
  kill "$cluster"; wait "$cluster" 2>/dev/null || true

  # (b) one instance on one core, then two instances each on its own core.
  for n in 1 2; do
    start_cluster b
    "$BIN" import "$tmp/big.jsonl" --log "kafka://$bootstrap" --quiet --max-event-age none > /dev/null
    url=$(db bench_pinned)
    s=$(date +%s.%N)
    started=()
    for i in $(seq 0 $((n - 1))); do start_instance "$i" "$i" "$url"; started+=("$instance"); done
    read -r t d < <(wait_decided "$url" "$rows" "$s")
    python3 -c "print('(b) round $r: $n instance(s), one core each: %.0f tx/s while deciding (%s s from the first commit seen), %.0f tx/s from the start (%s s)' % ($rows / $d, '$d', $rows / $t, '$t'))"
    for p in "${started[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    kill "$cluster"; wait "$cluster" 2>/dev/null || true
  done
done

# (c) synchronous decisions through Kafka: openloop at each of $RATES/s over 32 connections.
cc -O2 -Wall -o "$tmp/openloop" "$here/benchmarks/openloop.c"
need=$((2000 * (SECONDS_LOAD + 5) + 1000))
ldays=$((need / 60000 + 2))
"$BIN" generate --cards 20000 --days "$ldays" --seed 7 --start "$(date -u -d "-$ldays days" +%Y-%m-%dT00:00:00Z)" 2>/dev/null \
  | sed -E 's/,"is_fraud":[01](,"fraud_pattern":"[a-z_]+")?//' | tail -n "$need" > "$tmp/load.jsonl"
for r in $(seq "$ROUNDS"); do for RATE in $RATES; do
  start_cluster c
  url=$(db bench_sync)
  start_instance 0 "" "$url"
  hport=$((PORT + 10))
  for _ in $(seq 240); do curl -sf "http://127.0.0.1:$hport/pipeline/health" > /dev/null && break; sleep 0.5; done
  sleep 5  # the group join
  out=$("$tmp/openloop" 127.0.0.1 "$hport" "$RATE" 32 "$SECONDS_LOAD" "$tmp/load.jsonl" 5 | tail -1)
  echo "(c) round $r: sync POST through Kafka at $RATE/s (result achieved/s p50 p90 p99 p99.9 max ms non2xx conn_errors unfinished): $out"
  kill "$instance"; wait "$instance" 2>/dev/null || true
  kill "$cluster"; wait "$cluster" 2>/dev/null || true
done; done

#!/usr/bin/env bash
# Issue 17: `cardwatch import` into the embedded SQLite warehouse vs into PostgreSQL (fsync
# on, a throwaway server of scripts/postgres.sh on this machine), interleaved, same data,
# same binary; and PostgreSQL's size per million decisions.
# usage: ROUNDS=3 benchmarks/import-postgres.sh CARDWATCH [DAYS] [CARDS]
set -euo pipefail
BIN=$1; DAYS=${2:-28}; CARDS=${3:-12000}; ROUNDS=${ROUNDS:-3}; PORT=${PORT:-55499}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); chmod 755 "$tmp"
pgdir=$("$here/scripts/postgres.sh" start "$PORT")
trap '"$here/scripts/postgres.sh" stop "$pgdir" || true; rm -rf "$tmp" "$pgdir"' EXIT
admin="postgres://ci@127.0.0.1:$PORT/postgres"
"$BIN" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$BIN" import "$tmp/tiny.jsonl" --data-dir "$tmp/seed" --quiet --json --max-event-age none > /dev/null
"$BIN" generate --days "$DAYS" --cards "$CARDS" --seed 5 --quiet --out "$tmp/big.jsonl"
echo "date: $(date -u +%FT%RZ) machine: $(nproc) cores, $(uname -r) load: $(cut -d' ' -f1-3 /proc/loadavg) rows: $(wc -l < "$tmp/big.jsonl")"
echo "postgres: $(psql "$admin" -Atc 'select version()' | cut -d, -f1), fsync $(psql "$admin" -Atc 'show fsync'), synchronous_commit $(psql "$admin" -Atc 'show synchronous_commit')"
for r in $(seq "$ROUNDS"); do
  for which in sqlite postgres; do
    rm -rf "$tmp/d"; mkdir -p "$tmp/d"; cp "$tmp/seed/registry.sqlite" "$tmp/d/"
    warehouse=()
    if [ $which = postgres ]; then
      psql "$admin" -qc "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench"
      warehouse=(--warehouse "postgres://ci@127.0.0.1:$PORT/bench" --registry sqlite)
    fi
    sync
    s=$(date +%s.%N)
    "$BIN" import "$tmp/big.jsonl" --data-dir "$tmp/d" --quiet --json --max-event-age none "${warehouse[@]}" > "$tmp/o.json"
    e=$(date +%s.%N)
    python3 -c "import json; m=json.load(open('$tmp/o.json')); print('$which round $r: %.0f tx/s (wall %.1f s), alerts %s' % (m['processed']/($e-$s), $e-$s, m['alerts']))"
    if [ $which = postgres ]; then
      psql "postgres://ci@127.0.0.1:$PORT/bench" -Atc "SELECT 'postgres size: ' || pg_size_pretty(pg_database_size('bench')) || ', ' || round(pg_database_size('bench') / 1048576.0 / (SELECT COUNT(*) FROM silver_transactions) * 1e6) || ' MiB per million decisions'"
    else
      python3 -c "import os; n=$(python3 -c "import json; print(json.load(open('$tmp/o.json'))['processed'])"); s=os.path.getsize('$tmp/d/log.sqlite'); print('sqlite log+warehouse size: %.0f MiB, %.0f MiB per million' % (s/1048576, s/1048576/n*1e6))"
    fi
  done
done

#!/usr/bin/env bash
# Issue 17: the API's reads against a PostgreSQL warehouse of ROWS silver rows (default 10 M,
# over 100 event days, 200,000 cards, an alert for every 100th, decided over the last 100 days
# of wall-clock time, about 1,000 a day; gold_minutes at 70 transactions a minute): GET /alerts/card/{id} and
# GET /stats/summary, p50/p99 over N sequential requests on one keep-alive connection, served
# by `cardwatch run --no-generator`; and the database's size per million decisions.
# The rows are made by SQL (generate_series) in the warehouse's own tables (the schema from
# an import of a small file), not decided one by one: what is measured is the reads.
# usage: benchmarks/postgres-reads.sh CARDWATCH [ROWS] [N]
set -euo pipefail
BIN=$1; ROWS=${2:-10000000}; N=${3:-1000}; PORT=${PORT:-55498}; HTTP=${HTTP:-18777}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); chmod 755 "$tmp"
pgdir=$("$here/scripts/postgres.sh" start "$PORT")
trap 'kill $run 2>/dev/null || true; "$here/scripts/postgres.sh" stop "$pgdir" || true; rm -rf "$tmp" "$pgdir"' EXIT
run=""
admin="postgres://ci@127.0.0.1:$PORT/postgres"
url="postgres://ci@127.0.0.1:$PORT/reads"
psql "$admin" -qc "CREATE DATABASE reads"
"$BIN" generate --days 1 --cards 50 --seed 2 --quiet --out "$tmp/tiny.jsonl"
"$BIN" import "$tmp/tiny.jsonl" --data-dir "$tmp/d" --warehouse "$url" --quiet --max-event-age none
echo "date: $(date -u +%FT%RZ) machine: $(nproc) cores load: $(cut -d' ' -f1-3 /proc/loadavg); $ROWS rows"
features=$(psql "$url" -Atc "SELECT string_agg(format('%I', column_name), ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'silver_transactions' AND ordinal_position BETWEEN 11 AND 39")
values=$(python3 -c "print(', '.join('random() * 100' for _ in range(29)))")
start=$(python3 -c "print(20300 * 86400000000)")  # 2025-07-31
step=$(( 100 * 86400000000 / ROWS ))
s=$(date +%s)
psql "$url" -q <<SQL
DO \$\$ BEGIN
  FOR d IN 0..100 LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF silver_transactions FOR VALUES FROM (%s) TO (%s)',
      'silver_' || to_char(to_timestamp(($start + d * 86400000000) / 1e6) AT TIME ZONE 'UTC', 'YYYYMMDD'),
      $start + d * 86400000000, $start + (d + 1) * 86400000000);
  END LOOP;
END \$\$;
INSERT INTO silver_transactions (stream, transaction_id, card_id, merchant_id, merchant_category, currency, country,
    channel, event_time, "timestamp", $features, fraud_probability, risk_tier, action, model_version, rule_hits,
    latency_us, is_fraud, fraud_pattern, label, arrival, "partition", "offset", decided_at)
SELECT 'bench', 'b' || i, 'card_' || (i % 200000), 'm_' || (i % 5000), '5411', 'USD', 'US', 'pos',
    $start + i::int8 * $step, 'x', $values, CASE WHEN i % 100 = 0 THEN 0.95 ELSE 0.01 END,
    CASE WHEN i % 100 = 0 THEN 'critical' ELSE 'low' END, CASE WHEN i % 100 = 0 THEN 'decline' ELSE 'approve' END,
    1, NULL, 900, 0, NULL, NULL, i / 5000, 0, i, $start + i::int8 * $step
FROM generate_series(1::int8, $ROWS) AS i;
INSERT INTO first_decisions SELECT transaction_id, stream, "partition", "offset", fraud_probability, risk_tier, action,
    model_version FROM silver_transactions WHERE stream = 'bench';
INSERT INTO alerts (transaction_id, card_id, merchant_id, amount, event_time, "timestamp", fraud_probability, risk_tier,
    action, model_version, reasons, fraud_pattern, arrival, decided_at)
SELECT transaction_id, card_id, merchant_id, amount, event_time, "timestamp", fraud_probability, risk_tier, action,
    model_version, '[{"kind":"feature","name":"amount","value":1,"contribution":1}]', NULL, arrival,
    (extract(epoch FROM now()) * 1e6)::int8 - ($ROWS - "offset") * (100 * 86400000000 / $ROWS)
FROM silver_transactions WHERE stream = 'bench' AND risk_tier = 'critical';
INSERT INTO gold_minutes (minute, transactions, alerts, reviews, declines, probability_nanos, latency_sum_us, latency_max_us)
SELECT m, 70, 1, 0, 1, 70::int8 * 20000000, 70 * 900, 900
FROM generate_series((extract(epoch FROM now())::int8 / 60 - 1440) * 60000000, (extract(epoch FROM now())::int8 / 60) * 60000000, 60000000) AS m
ON CONFLICT (minute) DO NOTHING;
ANALYZE;
SQL
echo "loaded in $(( $(date +%s) - s )) s: $(psql "$url" -Atc "SELECT COUNT(*) FROM silver_transactions") silver rows, $(psql "$url" -Atc "SELECT COUNT(*) FROM alerts") alerts"
psql "$url" -Atc "SELECT 'database size: ' || pg_size_pretty(pg_database_size('reads')) || ', ' || round(pg_database_size('reads') / 1048576.0 / (SELECT COUNT(*) FROM silver_transactions) * 1e6) || ' MiB per million decisions (silver ' || pg_size_pretty(pg_total_relation_size('silver_transactions')) || ' incl. partitions: ' || (SELECT pg_size_pretty(SUM(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'silver_transactions'::regclass) || ')'"
"$BIN" run --data-dir "$tmp/d" --warehouse "$url" --no-generator --port "$HTTP" --quiet > "$tmp/run.log" 2>&1 &
run=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$HTTP/pipeline/health" > /dev/null && break; sleep 0.2; done
python3 - "$HTTP" "$N" <<'PY'
import http.client, random, statistics, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
def timed(path):
    t = time.perf_counter(); c.request("GET", path); r = c.getresponse(); body = r.read()
    assert r.status == 200, (r.status, body[:200]); return (time.perf_counter() - t) * 1000, body
rng = random.Random(7)
for name, make in [("/alerts/card/{id}", lambda: f"/alerts/card/card_{rng.randrange(200000)}"),
                   ("/stats/summary", lambda: "/stats/summary")]:
    for _ in range(20): timed(make())  # warm
    xs = sorted(timed(make())[0] for _ in range(n))
    print(f"{name}: p50 {xs[len(xs) // 2]:.2f} ms, p99 {xs[int(len(xs) * 0.99)]:.2f} ms, max {xs[-1]:.2f} ms ({n} requests)")
_, body = timed("/alerts/card/card_100")
print(f"  e.g. /alerts/card/card_100 → {body.count(b'transaction_id')} alerts")
PY

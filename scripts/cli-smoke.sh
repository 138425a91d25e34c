#!/usr/bin/env bash
# The CLI end to end, in a release build: generate a month, validate it, and check
# that a file with bad records is rejected with each record's line and reasons.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

swift run -c release cardwatch generate --days 30 --seed 1 --out "$tmp/h.jsonl" --labels-out "$tmp/labels.jsonl"
swift run -c release cardwatch validate "$tmp/h.jsonl"

# Same seed, byte-identical output; CSV validates too.
bin=$(swift build -c release --show-bin-path)/cardwatch
"$bin" generate --days 30 --seed 1 --quiet --out "$tmp/h2.jsonl"
cmp "$tmp/h.jsonl" "$tmp/h2.jsonl"
"$bin" generate --days 3 --seed 2 --quiet --out "$tmp/h.csv"
"$bin" validate "$tmp/h.csv"
test -s "$tmp/labels.jsonl"

# Bad records: each reported with its line, exit status 1, all kept in the dead-letter file.
head -n 3 "$tmp/h.jsonl" > "$tmp/bad.jsonl"
cat >> "$tmp/bad.jsonl" <<'BAD'
{"transaction_id":"x1","card_id":"c","amount":-5,"timestamp":"yesterday","merchant_id":"m","channel":"drone"}
{"transaction_id":"x2","card_id":"c","amount":10,"timestamp":"2026-01-01T00:00:00Z","merchant_id":"m","latitude":40.1}
not json at all
BAD
status=0
"$bin" validate "$tmp/bad.jsonl" --dead-letters "$tmp/dead.jsonl" > "$tmp/report.txt" || status=$?
cat "$tmp/report.txt"
[ "$status" -eq 1 ] || { echo "validate should exit 1 on bad records, got $status" >&2; exit 1; }
grep -q ':4: .*amount: must be greater than 0' "$tmp/report.txt"
grep -q ':4: .*timestamp:' "$tmp/report.txt"
grep -q ':4: .*channel: unknown channel' "$tmp/report.txt"
grep -q ':5: longitude: missing' "$tmp/report.txt"
grep -q ':6: record: malformed JSON' "$tmp/report.txt"
[ "$(wc -l < "$tmp/dead.jsonl")" -eq 3 ] || { echo "expected 3 dead letters" >&2; exit 1; }

# The training table: one row per transaction, the eight named features among the columns.
"$bin" features --in "$tmp/h.jsonl" --out "$tmp/table.csv"
header=$(head -n 1 "$tmp/table.csv")
for f in tx_count_5min tx_count_1hr avg_amount_1hr max_amount_1hr geo_velocity_kmh time_since_last_tx_s \
         high_risk_merchant_count_1hr amount_vs_avg_ratio is_fraud transaction_id timestamp; do
  case ",$header," in *",$f,"*) ;; *) echo "training table lacks $f" >&2; exit 1 ;; esac
done
[ "$(($(wc -l < "$tmp/table.csv") - 1))" -eq "$(wc -l < "$tmp/h.jsonl")" ] || { echo "table rows != records" >&2; exit 1; }
"$bin" features --in "$tmp/h.jsonl" --labels "$tmp/labels.jsonl" --out "$tmp/table-labels.csv" --quiet
status=0
"$bin" features --in "$tmp/bad.jsonl" --out "$tmp/partial.csv" --quiet 2> "$tmp/err.txt" || status=$?
[ "$status" -eq 1 ] && grep -q "bad.jsonl:4" "$tmp/err.txt" || { echo "features should report bad records and exit 1" >&2; exit 1; }

# A missing file is a clear error with exit status 2.
status=0
"$bin" validate "$tmp/does-not-exist.jsonl" 2> "$tmp/err.txt" || status=$?
[ "$status" -eq 2 ] && grep -q "cannot open" "$tmp/err.txt"
echo "CLI smoke test passed"

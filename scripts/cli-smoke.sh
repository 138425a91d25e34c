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

# Train on days 1–21, test on the rest: the quality bar of issue #4, checked on every run.
"$bin" train --data "$tmp/h.jsonl" --train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 \
  --data-dir "$tmp/data" --promote --json --predictions-out "$tmp/preds.csv" > "$tmp/train.json"
cat "$tmp/train.json"
python3 - "$tmp/train.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["roc_auc"] >= 0.98, f"ROC AUC {m['roc_auc']} < 0.98"
assert m["average_precision"] >= 0.90, f"average precision {m['average_precision']} < 0.90"
assert set(m["per_pattern_recall"]) == {"geo_jump", "velocity_burst", "high_amount", "card_testing"}, m["per_pattern_recall"]
assert m["model_version"] == 1 and m["promoted"] is True
for key in ("card_precision_at_100", "recall_at_1pct_fpr", "brier_score", "reliability", "calibration"):
    assert key in m, key
# The model search ran (on by default) and recorded its candidates; the winner scored best on validation.
s = m["search"]
assert 1 <= s["tried"] <= s["listed"] and len(s["candidates"]) == s["tried"], s
if s["finals"]:  # sampled candidates: the finalist refitted with the better validation AP
    assert max(s["finals"], key=lambda f: f["average_precision"])["candidate"] == s["chosen"], s
else:
    assert max(c["average_precision"] for c in s["candidates"]) == s["candidates"][s["chosen"]]["average_precision"]
assert m["brier_score"] < 0.01 and sum(b["rows"] for b in m["reliability"]) == m["rows"], m["reliability"]
print("search: %d of %d candidates, %.1f s of budget, winner %s" % (s["tried"], s["listed"], s["spent_seconds"], m["model_kind"]))
print("model quality: AUC %.4f, AP %.4f" % (m["roc_auc"], m["average_precision"]))
PY
[ "$(head -n 1 "$tmp/preds.csv")" = "transaction_id,timestamp,card_id,score,label" ]
"$bin" models list --data-dir "$tmp/data" | grep -q production
"$bin" models show production --data-dir "$tmp/data" > "$tmp/show.txt"
grep -q "test window" "$tmp/show.txt" && grep -q "^model search: " "$tmp/show.txt" && grep -q "^calibration: " "$tmp/show.txt"
# --no-tuning: one fit with the given parameters, no search recorded.
"$bin" train --data "$tmp/h.jsonl" --no-tuning --trees 60 --no-register --json > "$tmp/single.json"
python3 -c "import json; m=json.load(open('$tmp/single.json')); assert m['search'] is None and m['trees'] <= 60, m"
"$bin" evaluate --model production --data "$tmp/h.jsonl" --from 2026-01-22 --data-dir "$tmp/data" --json > "$tmp/eval.json"
python3 -c "import json,sys; a=json.load(open('$tmp/train.json')); b=json.load(open('$tmp/eval.json')); assert abs(a['roc_auc']-b['roc_auc'])<1e-12, (a['roc_auc'], b['roc_auc'])"
# A logistic baseline, trained on the feature table.
"$bin" train --table "$tmp/table.csv" --label is_fraud --test-fraction 0.3 --model logistic --data-dir "$tmp/data" --json > /dev/null
# The production model and the baseline on the same rows, with bootstrap intervals on AP (issue 15).
"$bin" evaluate --compare production,2 --data "$tmp/h.jsonl" --from 2026-01-22 --data-dir "$tmp/data" --bootstrap 200 \
  --json > "$tmp/compare.json"
python3 - "$tmp/compare.json" "$tmp/eval.json" <<'PY'
import json, sys
c, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
first, second = c["models"]
assert c["rows"] == e["rows"] and first["average_precision"] == e["average_precision"], (c["rows"], e["rows"])
for m in c["models"]:
    lo, hi = m["average_precision_interval"]
    assert lo <= m["average_precision"] <= hi, m
    assert 0 <= m["brier_score"] < 0.25, m
lo, hi = second["average_precision_difference_interval"]
assert lo <= second["average_precision"] - first["average_precision"] <= hi, second
print(f"evaluate --compare: v{first['model_version']} AP {first['average_precision']:.4f} vs v{second['model_version']} "
      f"{second['average_precision']:.4f}, difference in [{lo:.3f}, {hi:.3f}]")
PY
# Any schema v1 file trains: strip coordinates, categories and channels.
python3 - "$tmp/h.jsonl" "$tmp/bare.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        r = json.loads(line)
        for k in ("latitude", "longitude", "merchant_category", "channel", "country", "customer_id", "fraud_pattern"):
            r.pop(k, None)
        out.write(json.dumps(r) + "\n")
PY
"$bin" train --data "$tmp/bare.jsonl" --data-dir "$tmp/data" --no-register --json > "$tmp/bare.json"
status=0
"$bin" train --data "$tmp/h.jsonl" --train-from 2026-01-20 --train-to 2026-01-10 --data-dir "$tmp/data" 2> "$tmp/err.txt" || status=$?
{ [ "$status" -ne 0 ] && grep -q "training window" "$tmp/err.txt"; } || { echo "a reversed window must be refused" >&2; exit 1; }

# The pipeline: import the history (and its labels) through the log with the promoted model,
# then a few seconds of `run` with the live generator, stopped by SIGINT. The history's
# event times lie months behind the wall clock: a historical import lifts the past bound.
"$bin" import "$tmp/h.jsonl" --labels "$tmp/labels.jsonl" --data-dir "$tmp/data" --json --quiet --max-event-age none \
  > "$tmp/import.json"
python3 - "$tmp/import.json" "$(wc -l < "$tmp/h.jsonl")" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for key in ("read", "accepted", "processed", "dead_lettered", "duplicates", "alerts", "model_version"):
    assert key in m, key
assert m["processed"] == int(sys.argv[2]) and m["dead_lettered"] == 0 and m["duplicates"] == 0, m
assert 0 < m["alerts"] < m["processed"] * 0.05, m
print("import: %d processed, %d alerts, %.0f tx/s" % (m["processed"], m["alerts"], m["transactions_per_second"]))
PY
# Importing the same file again adds nothing: every record was committed.
"$bin" import "$tmp/h.jsonl" --data-dir "$tmp/data" --json --quiet --max-event-age none | grep -q '"processed":0'
# The topology, printed without starting anything: the existing log's partitioning, the embedded sinks.
"$bin" run --data-dir "$tmp/data" --print-topology > "$tmp/topology.txt"
grep -q "^log: sqlite:$tmp/data/log.sqlite, 1 partition, keys by murmur2" "$tmp/topology.txt" \
  && grep -q "^decision sink (warehouse): sqlite:$tmp/data/log.sqlite" "$tmp/topology.txt" \
  || { cat "$tmp/topology.txt"; echo "run --print-topology must describe the data directory's pipeline" >&2; exit 1; }
# This build has no Kafka trait: --log kafka:// is refused with how to get a build that has it.
if "$bin" import "$tmp/h.jsonl" --data-dir "$tmp/data" --log kafka://localhost:9092 2> "$tmp/err.txt"; then
  echo "a build without the Kafka trait must refuse --log kafka://" >&2; exit 1
fi
grep -q "no Kafka support.*--traits Kafka" "$tmp/err.txt" || { cat "$tmp/err.txt"; exit 1; }
status=0
timeout --preserve-status -s INT 8 "$bin" run --data-dir "$tmp/data" --tps 200 --health-interval 2 2> "$tmp/run.err" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/run.err"; exit 1; }
grep -q "stopped: [1-9]" "$tmp/run.err" || { cat "$tmp/run.err"; echo "run decided nothing"; exit 1; }
grep -q "^latency, append to committed decisions" "$tmp/run.err" || { echo "run printed no latency"; exit 1; }
python3 - "$tmp/data/log.sqlite" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
live = c.execute("SELECT COUNT(*) FROM silver_transactions WHERE event_time > strftime('%s','2026-06-01') * 1000000").fetchone()[0]
health = c.execute("SELECT COUNT(*) FROM health_reports").fetchone()[0]
assert live > 100 and health >= 2, (live, health)
for view in ("bronze_transactions", "dead_letters", "hourly_metrics", "card_risk"):
    c.execute(f"SELECT * FROM {view} LIMIT 1").fetchall()
print("run: %d live decisions, %d health reports" % (live, health))
PY

# One writer per data directory (issue 14, item 16): while `run` holds DATA_DIR/lock, `import` is refused
# naming its PID, and `models promote` (the registry alone) works; the run follows that promotion within
# 2 s (item 15) under its own thresholds, which `models show` names (item 17). SIGKILLed, the run leaves
# no lock behind.
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$bin" run --data-dir "$tmp/data" --tps 50 --port "$port" --high-threshold 0.3 2> "$tmp/run2.err" &
runpid=$!
for _ in $(seq 300); do grep -q "running:" "$tmp/run2.err" && break; sleep 0.1; done
[ "$(head -n 1 "$tmp/data/lock")" = "$runpid" ] || { cat "$tmp/run2.err"; echo "run did not take the lock" >&2; exit 1; }
status=0
"$bin" import "$tmp/h.jsonl" --data-dir "$tmp/data" --quiet 2> "$tmp/err.txt" || status=$?
{ [ "$status" -ne 0 ] && grep -q "data directory .* in use by PID $runpid (cardwatch run)" "$tmp/err.txt"; } \
  || { cat "$tmp/err.txt"; echo "a second writer must be refused (status $status)" >&2; exit 1; }
other=$("$bin" models list --data-dir "$tmp/data" --json | python3 -c "import json,sys; print(max(m['version'] for m in json.load(sys.stdin) if m['stage'] != 'production'))")
"$bin" models promote "$other" --force --data-dir "$tmp/data"
for _ in $(seq 20); do grep -q "scoring with model v$other" "$tmp/run2.err" && break; sleep 0.1; done
grep -q "scoring with model v$other" "$tmp/run2.err" || { cat "$tmp/run2.err"; echo "run did not follow the promotion within 2 s" >&2; exit 1; }
"$bin" models show production --data-dir "$tmp/data" > "$tmp/show.txt"
grep -q "thresholds applied: review (high) ≥ 0.3000" "$tmp/show.txt" && grep -q "overriding the model's own" "$tmp/show.txt" \
  || { cat "$tmp/show.txt"; echo "models show must print the thresholds applied" >&2; exit 1; }
kill -9 "$runpid"; wait "$runpid" 2>/dev/null || true
# The import decides what the killed run appended but had not committed (none, unless the kill
# fell between an append and its commit) and nothing it had.
pending=$(python3 -c "import sqlite3; c = sqlite3.connect('$tmp/data/log.sqlite'); print(c.execute(\"SELECT (SELECT COUNT(*) FROM records WHERE topic = 'transactions') - (SELECT COUNT(*) FROM silver_transactions)\").fetchone()[0])")
"$bin" import "$tmp/h.jsonl" --data-dir "$tmp/data" --json --quiet --max-event-age none > "$tmp/after-kill.json"
grep -q "\"processed\":$pending[,}]" "$tmp/after-kill.json" \
  || { cat "$tmp/after-kill.json"; echo "after the SIGKILL the import must decide the $pending records left, no more" >&2; exit 1; }
echo "lock: import refused while run (PID $runpid) held the data directory, accepted after its SIGKILL"

# A first day without labels (issue 15): a history without is_fraud imported into a new data
# directory bootstraps an isolation forest over it; `run --no-generator` serves it (a POST is
# decided and explained by it); a GBDT trained once labels exist replaces it by the promotion rule.
python3 - "$tmp/h.jsonl" "$tmp/unlabelled.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as src, open(sys.argv[2], "w") as out:
    for line in src:
        r = json.loads(line)
        r.pop("is_fraud", None)
        r.pop("fraud_pattern", None)
        out.write(json.dumps(r) + "\n")
PY
"$bin" import "$tmp/unlabelled.jsonl" --data-dir "$tmp/unlabelled" --json --max-event-age none \
  > "$tmp/ul-import.json" 2> "$tmp/ul-import.err"
grep -q "bootstrap: .*too few for a supervised model: training an isolation forest" "$tmp/ul-import.err" \
  || { cat "$tmp/ul-import.err"; echo "an unlabelled history must bootstrap an isolation forest" >&2; exit 1; }
"$bin" models list --data-dir "$tmp/unlabelled" --json | python3 -c "
import json, sys
models = json.load(sys.stdin)
assert [(m['version'], m['kind'], m['stage']) for m in models] == [(1, 'isolation_forest', 'production')], models"
python3 -c "import json; m = json.load(open('$tmp/ul-import.json')); assert m['model_version'] == 1 and 0 < m['alerts'] < m['processed'] * 0.05, m"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$bin" run --data-dir "$tmp/unlabelled" --no-generator --port "$port" 2> "$tmp/ul-run.err" &
runpid=$!
for _ in $(seq 300); do grep -q "running:" "$tmp/ul-run.err" && break; sleep 0.1; done
grep -q "model v1 in production" "$tmp/ul-run.err" || { cat "$tmp/ul-run.err"; echo "run must serve the isolation forest" >&2; exit 1; }
python3 - "$port" <<'PY'
import datetime, json, sys, urllib.request
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
body = json.dumps({"transaction_id": "ul-post-1", "card_id": "card-new", "amount": 4999.0, "timestamp": now,
                   "merchant_id": "m-new"}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/transactions", data=body,
                             headers={"Content-Type": "application/json"})
d = json.load(urllib.request.urlopen(req, timeout=10))
assert d["model_version"] == 1 and 0 < d["fraud_probability"] <= 1, d
print("run --no-generator: isolation forest v1 decided a POST: score %.3f, %s" % (d["fraud_probability"], d["action"]))
PY
kill -INT "$runpid"; wait "$runpid" || { cat "$tmp/ul-run.err"; echo "run did not stop cleanly" >&2; exit 1; }
"$bin" train --data "$tmp/h.jsonl" --train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 \
  --data-dir "$tmp/unlabelled" --promote --json > "$tmp/ul-train.json"
"$bin" models list --data-dir "$tmp/unlabelled" --json | python3 -c "
import json, sys
stages = {m['version']: (m['kind'], m['stage']) for m in json.load(sys.stdin)}
assert stages == {1: ('isolation_forest', 'archived'), 2: ('gbdt', 'production')}, stages"
"$bin" models show 2 --data-dir "$tmp/unlabelled" | grep -q "re-evaluated on the candidate's test window" \
  || { "$bin" models show 2 --data-dir "$tmp/unlabelled"; echo "the promotion must compare with the isolation forest" >&2; exit 1; }
echo "unlabelled history: isolation forest bootstrapped and served, replaced by a GBDT through the promotion rule"

# Every help text is true of today's commands.
if "$bin" --help | grep -qi "soon"; then echo "cardwatch --help promises what exists" >&2; exit 1; fi

# A restarted run goes on where its stream left off: the alert share stays within a point (item 14).
python3 scripts/restart-test.py "$bin" "$tmp/restart"
# A full disk, for real (root: a small tmpfs): 503 with Retry-After, then the pipeline resumes by itself (item 5).
python3 scripts/disk-full-test.py "$bin"

# Exactly once: SIGKILL an import at random points, restart, compare with a clean import.
python3 scripts/crash-test.py "$bin" "$tmp/crash" --kills 5 --days 30 --cards 1000
# The same with a log of four partitions: ids, counts and every feature identical.
python3 scripts/crash-test.py "$bin" "$tmp/crash4" --kills 4 --days 20 --cards 800 --partitions 4

# The PostgreSQL warehouse (the test command's throwaway server, fsync on): exactly once under
# SIGKILL, and a running pipeline across a restart and a 10 s stop of PostgreSQL.
if [ -n "${CARDWATCH_TEST_POSTGRES:-}" ] && [ -n "${CARDWATCH_PG_DIR:-}" ]; then
  python3 scripts/crash-test.py "$bin" "$tmp/crash-pg" --kills 4 --days 20 --cards 800 --partitions 2 \
    --postgres "$CARDWATCH_TEST_POSTGRES"
  python3 scripts/postgres-outage-test.py "$bin" "$tmp/outage" "$CARDWATCH_PG_DIR" "$CARDWATCH_TEST_POSTGRES"
  # Two instances, logs of their own, one warehouse and registry: a promotion from a third process.
  python3 scripts/postgres-instances-test.py "$bin" "$tmp/instances" "$CARDWATCH_TEST_POSTGRES"
else
  echo "(no test PostgreSQL: scripts/test.sh starts one; the PostgreSQL warehouse's end-to-end tests are skipped)"
fi

# A missing file is a clear error with exit status 2.
status=0
"$bin" validate "$tmp/does-not-exist.jsonl" 2> "$tmp/err.txt" || status=$?
{ [ "$status" -eq 2 ] && grep -q "cannot open" "$tmp/err.txt"; } || { echo "a missing file must exit 2" >&2; exit 1; }
echo "CLI smoke test passed"

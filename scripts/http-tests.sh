#!/usr/bin/env bash
# The HTTP face of a real `cardwatch run` (issue #6), with real tools: Prometheus scrapes
# /metrics and reports the target up with a cardwatch metric queryable; headless Chromium
# loads the dashboard and waits for live alerts (scripts/browser-test.py, a screenshot kept
# in $ARTIFACTS or the temp dir); schemathesis checks every route against /openapi.json.
# Then the same data directory is served again with tokens and short timeouts, and a hostile
# client (scripts/hostile-client.py, issue 14) sends what must not crash, hang or exhaust it;
# the dashboard is loaded once more and must ask for the read token.
# Installs prometheus, chromium, chromium-driver (Debian) and selenium, schemathesis (PyPI,
# in .venv-http) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in prometheus chromium chromium-driver; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
venv=.venv-http
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
  echo "== python tools (selenium, schemathesis) in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q selenium schemathesis
fi

bin=$(swift build -c release --show-bin-path)/cardwatch
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
port=$(free_port)
url="http://127.0.0.1:$port"

echo "== cardwatch run on $url (bootstraps a model first)"
# No bound on event times: schemathesis generates any date-time the schema allows, and a bound
# relative to the wall clock is no JSON Schema rule (scripts/data-test.py checks the bounds).
# The in-process online store: POST /predict?mode=online answers (schemathesis sends it too).
"$bin" run --data-dir "$tmp/data" --tps 200 --port "$port" --health-interval 2 --quiet \
  --max-event-lead none --max-event-age none --online-store memory 2> "$tmp/run.err" &
pids+=($!)
for _ in $(seq 120); do curl -sf "$url/models" >/dev/null && break; sleep 0.5; done
curl -sf "$url/models" >/dev/null || { cat "$tmp/run.err"; echo "the server did not come up"; exit 1; }

echo "== Prometheus scrapes /metrics"
pport=$(free_port)
cat > "$tmp/prometheus.yml" <<EOF
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: cardwatch
    static_configs: [{targets: ["127.0.0.1:$port"]}]
EOF
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --web.listen-address="127.0.0.1:$pport" > "$tmp/prometheus.log" 2>&1 &
pids+=($!)
ok=""
for _ in $(seq 60); do
  sleep 1
  up=$(curl -sf "http://127.0.0.1:$pport/api/v1/targets" | python3 -c "import json,sys; t=json.load(sys.stdin)['data']['activeTargets']; print(t[0]['health'] if t else '')" 2>/dev/null || true)
  value=$(curl -sf "http://127.0.0.1:$pport/api/v1/query?query=sum(cardwatch_transactions_total)" \
    | python3 -c "import json,sys; r=json.load(sys.stdin)['data']['result']; print(r[0]['value'][1] if r else '')" 2>/dev/null || true)
  if [ "$up" = "up" ] && [ -n "$value" ] && [ "${value%.*}" -gt 0 ]; then ok=1; break; fi
done
[ -n "$ok" ] || { tail -5 "$tmp/prometheus.log"; echo "Prometheus: target '$up', sum(cardwatch_transactions_total) '$value'"; exit 1; }
echo "Prometheus: target up, sum(cardwatch_transactions_total) = $value"

echo "== headless Chromium on the dashboard"
shot=${ARTIFACTS:-$tmp}/dashboard.png
"$venv/bin/python" scripts/browser-test.py "$url/" "$shot"

echo "== schemathesis against $url/openapi.json"
# Every documented operation with generated requests (valid and invalid): no 5xx, documented status codes,
# content types and response schemas.
"$venv/bin/schemathesis" run "$url/openapi.json" --checks all --max-examples 25 --seed 1 --exclude-path /alerts/stream \
  2>&1 | tail -40

kill -INT "${pids[0]}"; wait "${pids[0]}" || { cat "$tmp/run.err"; echo "run did not stop cleanly"; exit 1; }

echo "== the same data served with a write and a read token, short timeouts, small limits"
hostile=(--token w-s3cret --read-token r-s3cret --header-timeout 2 --idle-timeout 3 --max-connections 3000 --max-records 1000
  --dead-letter-burst 50)
"$bin" run --data-dir "$tmp/data" --tps 200 --port "$port" --health-interval 2 --quiet "${hostile[@]}" \
  --dead-letter-rate 1 2> "$tmp/run2.err" &
pids[0]=$!
for _ in $(seq 120); do curl -sf -H "Authorization: Bearer r-s3cret" "$url/models" >/dev/null && break; sleep 0.5; done

echo "== hostile client (items 1-4, 7, 9 of issue 14)"
python3 scripts/hostile-client.py --url "$url" "${hostile[@]}" \
  || { tail -20 "$tmp/run2.err"; echo "hostile-client.py: failed expectations"; exit 1; }

echo "== headless Chromium on the dashboard, with the read token"
"$venv/bin/python" scripts/browser-test.py "$url/" "${ARTIFACTS:-$tmp}/dashboard-token.png" r-s3cret w-s3cret

kill -INT "${pids[0]}"; wait "${pids[0]}" || { cat "$tmp/run2.err"; echo "run did not stop cleanly"; exit 1; }
if grep -E " (error|critical) " "$tmp/run2.err"; then echo "the server logged errors under the hostile client"; exit 1; fi
echo "HTTP tests passed"

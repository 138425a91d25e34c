#!/usr/bin/env bash
# Issue #6's benchmark: POST /v1/transactions, one new transaction per request (unique ids,
# benchmarks/decide.lua), each answered with its synchronous decision, under wrk on loopback
# against `cardwatch run --no-generator` (release build, a bootstrapped model), at 32 and at
# 128 connections, DURATION seconds each.
DURATION=${DURATION:-15}
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$bin" run --data-dir "$tmp/data" --no-generator --port "$port" --quiet 2> "$tmp/run.err" &
server=$!
trap 'kill $server 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/models" >/dev/null && break; sleep 0.5; done
for c in 32 128; do
  echo "## wrk -t2 -c$c -d${DURATION}s --latency -s benchmarks/decide.lua"
  wrk -t2 -c"$c" -d"${DURATION}s" --latency -s benchmarks/decide.lua "http://127.0.0.1:$port" | grep -E "Latency|50%|90%|99%|Requests/sec|requests in|Non-2xx"
  echo
done
curl -s "http://127.0.0.1:$port/stats/summary"; echo

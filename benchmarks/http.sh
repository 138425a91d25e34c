#!/usr/bin/env bash
# Issue #6's benchmark: POST /v1/transactions with one new transaction per request (generated
# traffic of 20,000 cards, `make_traffic` in common.sh, sent by benchmarks/decide.lua), each
# answered with its synchronous decision (appended to the log, features, scoring, rules,
# warehouse rows, committed), under wrk on loopback against `cardwatch run --no-generator`
# (release build, a bootstrapped model). Each of RUNS runs starts a server on a new data
# directory, warms it up for 3 s, then measures DURATION seconds at 32 connections (the
# goal's figure) and at 128; medians over the runs. The last column is the share of the
# run's decisions that were alerts (each explained by TreeSHAP before its answer).
DURATION=${DURATION:-10}
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
# Enough transactions for 3 s of warm-up and each measurement at up to 40,000 and 50,000 a second.
make_traffic warm:120000 c32:$((DURATION * 40000)) c128:$((DURATION * 50000))
echo "$runs runs; wrk -t2 -d${DURATION}s -s benchmarks/decide.lua, after 3 s at 32 connections to warm up"
echo "run  connections  requests/s  p50 ms  p90 ms  p99 ms  p99.9 ms  alerts %"
for run in $(seq "$runs"); do
  start_server "$tmp/data$run"
  for c in 32 128; do
    before=$(alerts_and_decisions "$port")
    out=$(wrk -t2 -c"$c" -d"${DURATION}s" -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/c$c.jsonl" 2)
    if grep -q "non-2xx\|ran out" <<< "$out"; then echo "$out"; echo "the run was not clean"; exit 1; fi
    line=$(grep '^result' <<< "$out")
    share=$(echo "$before $(alerts_and_decisions "$port")" | awk '{ printf "%.2f", ($4 > $2 ? 100 * ($3 - $1) / ($4 - $2) : 0) }')
    echo "$run    $c  ${line#result }  $share" | tee -a "$tmp/c$c"
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
  rm -rf "$tmp/data$run"
done
for c in 32 128; do
  rps=$(awk '{print $3}' "$tmp/c$c" | median)
  p99=$(awk '{print $6}' "$tmp/c$c" | median)
  echo "median at $c connections: $rps requests/s, p99 $p99 ms"
done

#!/usr/bin/env bash
# The HTTP budget's two figures in one run (DESIGN.md, budgets): (a) requests/s of
# POST /v1/transactions against a seed-style peer (benchmarks/http-peer/: FastAPI + uvicorn,
# per-card deques for the eight named features, XGBoost inplace_predict, nothing durable) under the
# same wrk load, goal ≥ 6×; (b) p99 at a fixed offered load of RATE (5,000) requests/s from an
# open-loop generator (benchmarks/openloop.c: latency from each request's scheduled time), goal
# ≤ 5 ms. Each of ROUNDS rounds runs, each server fresh (Cardwatch on a new data directory) and
# warmed up for 3 s with benchmarks/decide.lua at 32 connections:
#   wrk -t2 -c32 -dDURATION: Cardwatch, the peer with 2 uvicorn workers (one per core), with 1;
#   openloop at RATE/s for DURATION s over 32 connections: Cardwatch, the peer with 2 workers.
# Every server gets the same traffic (make_traffic in common.sh). The peer's model is trained first,
# on other generated history (PEER_CARDS cards × PEER_DAYS days) by the peer's own feature code,
# whose eight features are first checked to equal `cardwatch features` on that history.
# One parseable line per measurement, medians over the rounds at the end.
#
#   CARDWATCH_BIN=/path/to/release/cardwatch benchmarks/http-peer.sh   # else common.sh builds one
#
# Knobs: ROUNDS (3), DURATION (10), RATE (5000), OL_GRACE (2 s for an open-loop run's queue after its
# schedule ends), PEER_CARDS (2000), PEER_DAYS (30), VENV (.venv-bench: FastAPI, uvicorn[standard],
# XGBoost, numpy from PyPI, created on first use, as benchmarks/peers.sh does).
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-5000}
OL_GRACE=${OL_GRACE:-2}
PEER_CARDS=${PEER_CARDS:-2000}
PEER_DAYS=${PEER_DAYS:-30}
source "$(dirname "$0")/common.sh"
venv=${VENV:-$PWD/.venv-bench}
server=
# A failed run must not leave a server behind (uvicorn's supervisor stops its workers).
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { echo "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"; exit 1; }
fi
if ! "$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, xgboost, numpy' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check fastapi 'uvicorn[standard]' xgboost numpy \
    || { echo "pip install into $venv failed (is PyPI reachable?)"; exit 1; }
fi
cc -O2 -Wall -o "$tmp/openloop" benchmarks/openloop.c

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
warm_up() { wrk -t2 -c32 -d3s -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/warm.jsonl" 2 > /dev/null; }
# The peer with $1 uvicorn workers on a free port (sets $port and $server), warmed up once every
# worker has started. uvloop and httptools (uvicorn[standard]) and no access log: its fastest setup.
start_peer() {
  port=$(free_port)
  PEER_MODEL="$tmp/peer-model.ubj" OMP_NUM_THREADS=1 "$venv/bin/uvicorn" app:app --app-dir benchmarks/http-peer \
    --host 127.0.0.1 --port "$port" --workers "$1" --no-access-log --log-level info 2> "$tmp/peer.err" &
  server=$!
  for _ in $(seq 120); do
    [ "$(grep -c 'Application startup complete' "$tmp/peer.err")" -ge "$1" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$tmp/peer.err"; echo "the peer did not start"; exit 1; }
    sleep 0.5
  done
  [ "$(grep -c 'Application startup complete' "$tmp/peer.err")" -ge "$1" ] || { cat "$tmp/peer.err"; echo "the peer's workers did not all start"; exit 1; }
  warm_up
}
stop() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
}
# wrk at 32 connections for DURATION s: "wrk ROUND NAME requests/s p50 p90 p99 p99.9" (ms).
measure_wrk() {
  local out line
  out=$(wrk -t2 -c32 -d"${DURATION}s" -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/load.jsonl" 2)
  if grep -q "non-2xx\|ran out" <<< "$out"; then echo "$out"; echo "the run was not clean"; exit 1; fi
  line=$(grep '^result' <<< "$out")
  echo "wrk   $round  $1  ${line#result }" | tee -a "$tmp/results"
}
# openloop at RATE/s for DURATION s over 32 connections: "open ROUND NAME offered achieved p50 p90
# p99 p99.9 max non-2xx connection-errors unfinished" (ms). Falling behind (unfinished > 0, a low
# achieved rate) is a result; an error answer or a dropped connection makes the run unclean.
measure_open() {
  local out line
  out=$("$tmp/openloop" 127.0.0.1 "$port" "$RATE" 32 "$DURATION" "$tmp/load.jsonl" "$OL_GRACE")
  line=$(grep '^result' <<< "$out")
  read -r _ _ _ _ _ _ _ non2xx errors _ <<< "$line"
  if [ "$non2xx" != 0 ] || [ "$errors" != 0 ]; then echo "$out"; echo "the run was not clean"; exit 1; fi
  echo "open  $round  $1  $RATE  ${line#result }" | tee -a "$tmp/results"
}

echo "cardwatch: $bin ($(date -u -r "$bin" +%Y-%m-%dT%H:%MZ))"
echo "peer: python $("$venv/bin/python" -c 'import sys, fastapi, uvicorn, xgboost; print(sys.version.split()[0], "fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__, "xgboost", xgboost.__version__)')"
echo "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
# Enough transactions for 3 s of warm-up and each DURATION-second measurement at up to 40,000 a
# second (one slice, sent to every fresh server; the open-loop run needs RATE × DURATION of it).
make_traffic warm:120000 load:$((DURATION * 40000))
"$bin" generate --cards "$PEER_CARDS" --days "$PEER_DAYS" --seed 1 --quiet --out "$tmp/peer-history.jsonl"
# Cardwatch's own features of that history: train.py checks that the peer computes the same eight.
"$bin" features --in "$tmp/peer-history.jsonl" --out "$tmp/peer-table.csv" --quiet
(cd benchmarks/http-peer && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" train.py \
  "$tmp/peer-history.jsonl" "$tmp/peer-model.ubj" "$tmp/peer-table.csv")
echo
echo "$ROUNDS rounds, each server fresh and warmed up for 3 s: wrk -t2 -c32 -d${DURATION}s -s benchmarks/decide.lua;"
echo "openloop: $RATE requests/s for ${DURATION} s over 32 connections, latency from the scheduled send time"
echo "wrk   round  server  requests/s  p50 ms  p90 ms  p99 ms  p99.9 ms"
echo "open  round  server  offered/s  achieved/s  p50 ms  p90 ms  p99 ms  p99.9 ms  max ms  non-2xx  conn-errors  unfinished"
for round in $(seq "$ROUNDS"); do
  start_server "$tmp/data"
  measure_wrk cardwatch
  stop
  rm -rf "$tmp/data"
  start_peer 2
  measure_wrk peer-2w
  stop
  start_peer 1
  measure_wrk peer-1w
  stop
  start_server "$tmp/data"
  measure_open cardwatch
  stop
  rm -rf "$tmp/data"
  start_peer 2
  measure_open peer-2w
  stop
done
echo
med() { awk -v k="$1" -v s="$2" -v c="$3" '$1 == k && $3 == s { print $c }' "$tmp/results" | median; }
for s in cardwatch peer-2w peer-1w; do
  echo "median wrk $s: $(med wrk "$s" 4) requests/s, p99 $(med wrk "$s" 7) ms"
done
for s in cardwatch peer-2w; do
  echo "median open $s at $RATE/s: achieved $(med open "$s" 5)/s, p99 $(med open "$s" 8) ms, unfinished $(med open "$s" 13)"
done
cw=$(med wrk cardwatch 4)
echo "ratio cardwatch/peer-2w: $(awk -v a="$cw" -v b="$(med wrk peer-2w 4)" 'BEGIN { printf "%.2f", a / b }')" \
  "(cardwatch/peer-1w: $(awk -v a="$cw" -v b="$(med wrk peer-1w 4)" 'BEGIN { printf "%.2f", a / b }'); goal ≥ 6)"
echo "cardwatch p99 at $RATE/s: $(med open cardwatch 8) ms (goal ≤ 5 ms at 5000/s)"

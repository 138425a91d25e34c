#!/usr/bin/env bash
# Issue 19's figures in one run, on one Redis (scripts/redis.sh):
# (a) POST /predict?mode=online at a fixed offered load of RATE (5,000) requests/s from the open-loop
#     generator (benchmarks/openloop.c, OPENLOOP_PATH; latency from each request's scheduled time),
#     Cardwatch (`run --online-store`) and the seed-style peer (benchmarks/online-peer/: FastAPI +
#     uvicorn with 2 workers, redis.asyncio reading the same cw:card:{id} hash with a 5 ms timeout and
#     a breaker, XGBoost on the 29 features), with Redis up and with Redis down (shutdown nosave;
#     restarted from a dump of the profiles); goal p99 ≤ 5 ms both;
# (b) the processor's throughput, `import` of IMPORT transactions with and without --online-store
#     (each on a copy of one bootstrapped data directory), goal ≥ 90 %;
# (c) profile freshness: commit → written to Redis, p50/p99 (import's own measure: every write).
# The profiles come from importing the load's own transactions first (20,000 cards), so a
# request finds its card's profile. One parseable line per measurement, medians at the end.
#
#   CARDWATCH_BIN=/path/to/release/cardwatch benchmarks/online.sh   # else common.sh builds one
#
# Knobs: ROUNDS (3), DURATION (10), RATE (5000), IMPORT (300000), VENV (.venv-bench).
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-5000}
IMPORT=${IMPORT:-300000}
source "$(dirname "$0")/common.sh"
venv=${VENV:-$PWD/.venv-bench}
server= peer= redis_dir=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "$peer" ] && kill "$peer" 2>/dev/null;
  [ -n "$redis_dir" ] && scripts/redis.sh stop "$redis_dir"; rm -rf "$tmp" "$redis_dir"' EXIT
command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, xgboost, numpy, redis' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check fastapi 'uvicorn[standard]' xgboost numpy redis \
    || { echo "pip install into $venv failed (is PyPI reachable?)"; exit 1; }
fi
cc -O2 -Wall -o "$tmp/openloop" benchmarks/openloop.c
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
redis_port=$(free_port)
redis_dir=$(scripts/redis.sh start "$redis_port")
online="redis://127.0.0.1:$redis_port"
redis_up() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$redis_dir" \
    --logfile "$redis_dir/redis.log" >/dev/null
  for _ in $(seq 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return; sleep 0.05; done
  echo "Redis did not come back"; exit 1
}

echo "cardwatch: $bin ($(date -u -r "$bin" +%Y-%m-%dT%H:%MZ))"
echo "peer: python $("$venv/bin/python" -c 'import sys, fastapi, uvicorn, xgboost, redis; print(sys.version.split()[0], "fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__, "xgboost", xgboost.__version__, "redis-py", redis.__version__)')"
echo "redis: $(redis-server --version | cut -d' ' -f3)"
make_traffic load:$((RATE * DURATION)) bulk:"$IMPORT"

# One bootstrapped data directory (the model), copied for every server and import below.
"$bin" import "$tmp/load.jsonl" --data-dir "$tmp/base" --max-event-age none --quiet --online-store "$online" > /dev/null
redis-cli -p "$redis_port" save > /dev/null  # the profiles, for each restart after "Redis down"
echo "profiles in Redis: $(redis-cli -p "$redis_port" --scan --pattern 'cw:card:*' | wc -l) cards"

# The peer's model, on Cardwatch's features of other generated history.
"$bin" generate --cards 2000 --days 30 --seed 1 --quiet --out "$tmp/peer-history.jsonl"
"$bin" features --in "$tmp/peer-history.jsonl" --out "$tmp/peer-table.csv" --quiet
(cd benchmarks/online-peer && "$venv/bin/python" train.py "$tmp/peer-table.csv" "$tmp/peer-model.ubj")

start_cardwatch() {
  rm -rf "$tmp/serve" && cp -r "$tmp/base" "$tmp/serve"
  cw_port=$(free_port)
  "$bin" run --data-dir "$tmp/serve" --no-generator --port "$cw_port" --online-store "$online" --quiet 2> "$tmp/run.err" &
  server=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$cw_port/models" >/dev/null && return; sleep 0.5; done
  cat "$tmp/run.err"; echo "cardwatch did not start"; exit 1
}
start_peer() {
  peer_port=$(free_port)
  PEER_MODEL="$tmp/peer-model.ubj" REDIS_PORT="$redis_port" OMP_NUM_THREADS=1 "$venv/bin/uvicorn" app:app \
    --app-dir benchmarks/online-peer --host 127.0.0.1 --port "$peer_port" --workers 2 --no-access-log \
    --log-level info 2> "$tmp/peer.err" &
  peer=$!
  for _ in $(seq 120); do
    [ "$(grep -c 'Application startup complete' "$tmp/peer.err")" -ge 2 ] && return
    sleep 0.5
  done
  cat "$tmp/peer.err"; echo "the peer did not start"; exit 1
}
# openloop at RATE/s: "open ROUND NAME REDIS offered achieved p50 p90 p99 p99.9 max non2xx errors unfinished";
# then where the answers' features came from (Cardwatch: every answer of the run, from /metrics;
# the peer: a sample of 20 requests after the run).
# Cardwatch's answers by where their features came from, from /metrics: "HIT MISS FALLBACK".
sources_of() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -F'[{}" ]+' '/^cardwatch_feature_cache_hits_total\{/ { n[$3] = $NF }
    END { printf "%d %d %d\n", n["hit"], n["miss"], n["fallback"] }'
}
measure() {
  local port=$1 name=$2 state=$3 out line sources before after
  OPENLOOP_PATH=$4 "$tmp/openloop" 127.0.0.1 "$port" "$RATE" 8 3 "$tmp/load.jsonl" 2 > /dev/null  # warm-up
  [ "$name" = cardwatch ] && before=$(sources_of "$port")
  out=$(OPENLOOP_PATH=$4 "$tmp/openloop" 127.0.0.1 "$port" "$RATE" 32 "$DURATION" "$tmp/load.jsonl" 2)
  line=$(grep '^result' <<< "$out")
  read -r _ _ _ _ _ _ _ non2xx errors _ <<< "$line"
  if [ "$non2xx" != 0 ] || [ "$errors" != 0 ]; then echo "$out"; echo "the run was not clean"; exit 1; fi
  if [ "$name" = cardwatch ]; then
    # During the run: how many answers had the card's profile, none, or the fallback.
    after=$(sources_of "$port")
    sources=$(paste -d' ' <(tr ' ' '\n' <<< "$before") <(tr ' ' '\n' <<< "$after") \
      | awk 'BEGIN { split("online new_card fallback", k) } { printf "%s%s×%d", sep, k[NR], $2 - $1; sep="," }')
  else
    sources=$(head -20 "$tmp/load.jsonl" | while read -r tx; do
      curl -s -H 'content-type: application/json' -d "$tx" "http://127.0.0.1:$port$4" | python3 -c 'import json,sys; print(json.load(sys.stdin)["features"])'
    done | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=","}')
    sources="sample of 20: $sources"
  fi
  echo "open  $round  $name  $state  $RATE  ${line#result }  $sources" | tee -a "$tmp/results"
}

echo
echo "$ROUNDS rounds; openloop: $RATE requests/s for ${DURATION} s over 32 connections after 3 s at 8, latency from"
echo "the scheduled send time; Cardwatch POST /predict?mode=online, the peer POST /predict"
echo "open  round  server  redis  offered/s  achieved/s  p50 ms  p90 ms  p99 ms  p99.9 ms  max ms  non-2xx  conn-errors  unfinished  features"
start_cardwatch
start_peer
for round in $(seq "$ROUNDS"); do
  measure "$cw_port" cardwatch up "/predict?mode=online"
  measure "$peer_port" peer up "/predict"
  redis-cli -p "$redis_port" shutdown nosave > /dev/null 2>&1 || true
  measure "$cw_port" cardwatch down "/predict?mode=online"
  measure "$peer_port" peer down "/predict"
  redis_up
  sleep 2  # both breakers probe again and close
done
kill "$server" "$peer"; wait "$server" "$peer" 2>/dev/null || true
server= peer=

echo
echo "import of $IMPORT transactions (the model bootstrapped once; each run on a fresh copy), with and without --online-store"
echo "import  round  online  tx/s  writes  freshness-p50-ms  freshness-p99-ms  freshness-max-ms"
for round in $(seq "$ROUNDS"); do
  for mode in without with; do
    rm -rf "$tmp/imp" && cp -r "$tmp/base" "$tmp/imp"
    flags=()
    [ "$mode" = with ] && flags=(--online-store "$online")
    out=$("$bin" import "$tmp/bulk.jsonl" --data-dir "$tmp/imp" --max-event-age none --quiet --json "${flags[@]}")
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); f=d.get("online_freshness_ms", {});
print("import ", sys.argv[2], sys.argv[3], int(d["transactions_per_second"]), d.get("online_writes", "-"), f.get("p50", "-"), f.get("p99", "-"), f.get("max", "-"))' \
      "$out" "$round" "$mode" | tee -a "$tmp/results"
  done
done

echo
med() { awk -v s="$1" -v r="$2" -v c="$3" '$1 == "open" && $3 == s && $4 == r { print $c }' "$tmp/results" | median; }
for s in cardwatch peer; do
  for r in up down; do
    echo "median $s, Redis $r, at $RATE/s: achieved $(med $s $r 6)/s, p50 $(med $s $r 7) ms, p99 $(med $s $r 9) ms, unfinished $(med $s $r 14)"
  done
done
imp() { awk -v m="$1" -v c="$2" '$1 == "import" && $3 == m { print $c }' "$tmp/results" | median; }
ratios=$(awk '$1 == "import" { t[$2, $3] = $4 } END { for (k in t) { split(k, p, SUBSEP); if (p[2] == "with") print t[p[1], "with"] / t[p[1], "without"] } }' "$tmp/results" | median)
echo "median import: $(imp without 4) tx/s without, $(imp with 4) tx/s with the online store; median ratio of the rounds $ratios (goal ≥ 0.90)"
echo "median freshness (commit → written): p50 $(imp with 6) ms, p99 $(imp with 7) ms"

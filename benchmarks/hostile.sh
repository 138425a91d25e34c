#!/usr/bin/env bash
# Issue 14's hostile-client figures (release build, `cardwatch run` with its defaults and the
# live generator at 50 tx/s, a fresh data directory each):
#  1. /pipeline/health latency (RUNS runs of 100 requests, each on a new connection) while
#     benchmarks/hostile-load.py holds IDLE (20,000) idle connections and SLOW (500)
#     slowloris ones: opened once and held, then opened again whatever the server closes
#     (a flood of reconnections); the server keeps its machine's RLIMIT_NOFILE (20,000
#     here), the attacker runs as two processes of up to 18,000 connections each.
#  2. The server's resident memory around a 0.99 MB body of 330,000 `{}` lines
#     (benchmarks/large-body.py), twice: with the default limits (413 at once), and with
#     --max-records and the dead-letter allowance lifted (every line decided invalid and
#     dead-lettered, as before issue 14).
IDLE=${IDLE:-20000}
SLOW=${SLOW:-500}
RUNS=${RUNS:-3}
source "$(dirname "$0")/common.sh"
echo "server RLIMIT_NOFILE: $(ulimit -Sn) soft, $(ulimit -Hn) hard"

serve() {  # serve DIR ARGS...: starts `cardwatch run` (sets $port, $server), waits until it answers
  local dir=$1; shift
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  "$bin" run --data-dir "$dir" --port "$port" --health-interval 5 "$@" 2> "$tmp/run.err" &
  server=$!
  for _ in $(seq 240); do curl -sf "http://127.0.0.1:$port/pipeline/health" >/dev/null && break; sleep 0.5; done
}
stop() { kill -INT "$server"; wait "$server" 2>/dev/null || true; server=; }
server=
trap '[ -n "$server" ] && stop; rm -rf "$tmp"' EXIT

echo "== 1. /pipeline/health while $IDLE idle and $SLOW slowloris connections are held"
serve "$tmp/data"
grep -o "HTTP: at most [0-9]* connections (open-file limit [0-9]*)" "$tmp/run.err" || true
for mode in held reopened; do
  if [ "$mode" = held ]; then flags=(--no-reopen --warmup 3); else flags=(--warmup 15); fi
  echo "-- the attacker's connections $mode (${flags[*]})"
  for run in $(seq "$RUNS"); do
    python3 benchmarks/hostile-load.py --url "http://127.0.0.1:$port" --idle "$IDLE" --slowloris "$SLOW" --requests 100 \
      "${flags[@]}" > "$tmp/$mode$run.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('run', sys.argv[2], 'statuses', d['statuses'], 'p50', d['p50_ms'], 'ms, p99', d['p99_ms'], 'ms, max', d['max_ms'], 'ms; attacker at the end', d['attacker_at_the_end'], '; server open', d['server_metrics_after'].get('cardwatch_http_connections'))" "$tmp/$mode$run.json" "$run"
    sleep 12  # the attacker's connections are gone (head timeout) before the next run
  done
  for q in p50_ms p99_ms max_ms; do
    echo "median $q over $RUNS runs: $(for r in $(seq "$RUNS"); do python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$tmp/$mode$r.json" "$q"; done | median)"
  done
done
tail -1 "$tmp/run.err"
stop

echo "== 2a. 330,000 \`{}\` lines, default limits"
serve "$tmp/data"
python3 benchmarks/large-body.py --url "http://127.0.0.1:$port" --pid "$server" --times 2
stop
echo "== 2b. 330,000 \`{}\` lines, --max-records and the dead-letter allowance lifted"
serve "$tmp/data" --max-records 1000000 --dead-letter-burst 1000000 --dead-letter-rate 1000000
python3 benchmarks/large-body.py --url "http://127.0.0.1:$port" --pid "$server" --times 2
stop

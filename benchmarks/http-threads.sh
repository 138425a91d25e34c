#!/usr/bin/env bash
# Where the time of issue #6's benchmark goes, thread by thread: under the same load as
# benchmarks/http.sh (32 connections, benchmarks/decide.lua), each busy thread's share of one
# core on the CPU and waiting for one (run queue), from /proc/<pid>/task/<tid>/schedstat over
# WINDOW seconds in the middle of a 10 s run. A thread near 100 % of the two together is
# the pipeline's bottleneck; the CPU column summed is the machine's load (2 cores = 200 %).
WINDOW=${WINDOW:-5}
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
make_traffic warm:120000 load:400000
start_server "$tmp/data"
wrk -t2 -c32 -d10s -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/load.jsonl" 2 > "$tmp/wrk.out" &
load=$!
sleep 2
# tid, name, then schedstat's nanoseconds on the CPU and waiting in the run queue.
sample() {
  for p in "$server" $(pgrep -x wrk); do
    for t in /proc/"$p"/task/*; do echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(cut -d' ' -f1,2 "$t/schedstat")"; done
  done 2>/dev/null | sort
}
sample > "$tmp/before"
sleep "$WINDOW"
sample > "$tmp/after"
wait "$load"
echo "thread            cpu %  run-queue wait %"
join "$tmp/before" "$tmp/after" | awk -v w="$WINDOW" \
  '{ cpu = ($6 - $3) / (w * 1e7); rq = ($7 - $4) / (w * 1e7); total += cpu
     if (cpu >= 1) printf "%-16s %6.1f %8.1f\n", $2, cpu, rq }
   END { printf "all threads      %6.1f\n", total }'
grep '^result' "$tmp/wrk.out" | awk '{print "requests/s " $2 ", p50 " $3 " ms, p99 " $6 " ms"}'
kill "$server"
wait "$server" 2>/dev/null || true

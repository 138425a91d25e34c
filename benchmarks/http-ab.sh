#!/usr/bin/env bash
# Two builds of cardwatch under issue #6's load, interleaved: `benchmarks/http-ab.sh A B`,
# each of A and B a release binary's path or a commit (built in release in a worktree of
# its own, ~7 minutes each). Then ROUNDS rounds run A then B, each on a new data directory,
# warmed up for 3 s, then measured DURATION seconds at 32 connections with the generated
# traffic of benchmarks/http.sh (the same slice for both in a round). On this shared,
# noisy machine only binaries run in the same minutes compare; medians at the end.
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
[ $# -eq 2 ] || { echo "usage: benchmarks/http-ab.sh COMMIT_A COMMIT_B"; exit 2; }
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
declare -A build
trees=()
trap 'for t in "${trees[@]}"; do git worktree remove --force "$t"; done; rm -rf "$tmp"' EXIT
for rev in "$1" "$2"; do
  if [ -x "$rev" ] && [ -f "$rev" ]; then build[$rev]=$(realpath "$rev"); continue; fi
  tree="$tmp/tree-$(git rev-parse --short "$rev")"
  git worktree add -q --detach "$tree" "$rev"
  trees+=("$tree")
  (cd "$tree" && swift build -c release --product cardwatch >/dev/null)
  build[$rev]="$(cd "$tree" && swift build -c release --show-bin-path)/cardwatch"
done
make_traffic warm:120000 load:$((DURATION * 40000))
echo "$ROUNDS rounds; wrk -t2 -c32 -d${DURATION}s -s benchmarks/decide.lua after 3 s of warm-up"
echo "round  build  requests/s  p50 ms  p90 ms  p99 ms  p99.9 ms"
for round in $(seq "$ROUNDS"); do
  for rev in "$1" "$2"; do
    bin=${build[$rev]}
    start_server "$tmp/data"
    out=$(wrk -t2 -c32 -d"${DURATION}s" -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/load.jsonl" 2)
    if grep -q "non-2xx\|ran out" <<< "$out"; then echo "$out"; echo "the run was not clean"; exit 1; fi
    line=$(grep '^result' <<< "$out")
    echo "$round      $rev  ${line#result }" | tee -a "$tmp/ab"
    kill "$server"
    wait "$server" 2>/dev/null || true
    rm -rf "$tmp/data"
  done
done
for rev in "$1" "$2"; do
  echo "median of $rev: $(awk -v r="$rev" '$2 == r {print $3}' "$tmp/ab" | median) requests/s"
done

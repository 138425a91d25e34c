# Sourced by the benchmark scripts: a release build, a scratch directory, the machine, a median.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${RUNS:-5}
# CARDWATCH_BIN: a prebuilt release binary to use instead of building one here.
if [ -n "${CARDWATCH_BIN:-}" ]; then
  [ -x "$CARDWATCH_BIN" ] && [ -f "$CARDWATCH_BIN" ] || { echo "CARDWATCH_BIN=$CARDWATCH_BIN is not an executable file"; exit 1; }
  bin=$(realpath "$CARDWATCH_BIN")
else
  swift build -c release --product cardwatch >/dev/null
  bin=$(swift build -c release --show-bin-path)/cardwatch
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
# The median of numbers given one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Traffic for the HTTP benchmarks (benchmarks/decide.lua): generated transactions of 20,000
# cards in time order, each card's few a day, ending about now, labels stripped (a scoring request carries
# none), cut into consecutive files $tmp/NAME.jsonl of the given line counts, so that the
# wrk runs against one server never send a transaction twice. `make_traffic warm:120000 c32:400000`
make_traffic() {
  local total=0 spec
  for spec in "$@"; do total=$((total + ${spec#*:})); done
  # Dated to end about now: a server refuses event times far from its wall clock (--max-event-age).
  local days=$((total / 60000 + 2))
  "$bin" generate --cards 20000 --days "$days" --seed 7 --start "$(date -u -d "-$days days" +%Y-%m-%dT00:00:00Z)" 2>/dev/null \
    | sed -E 's/,"is_fraud":[01](,"fraud_pattern":"[a-z_]+")?//' \
    | awk -v specs="$*" -v dir="$tmp" 'BEGIN { n = split(specs, s, " "); k = 1; split(s[1], f, ":"); left = f[2] }
        k <= n { print > (dir "/" f[1] ".jsonl"); if (--left == 0 && ++k <= n) { split(s[k], f, ":"); left = f[2] } }'
  for spec in "$@"; do
    [ "$(wc -l < "$tmp/${spec%%:*}.jsonl")" -eq "${spec#*:}" ] || { echo "make_traffic: too few transactions for $spec"; exit 1; }
  done
}
# The server's alerts and decisions so far, from /metrics: "ALERTS DECISIONS".
alerts_and_decisions() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk '/^cardwatch_alerts_total / { a = $2 }
    /^cardwatch_transactions_total\{/ { d += $2 } END { printf "%d %d\n", a, d }'
}
# Starts `cardwatch run --no-generator` on a new data directory DIR and a free port (sets
# $port and $server), waits until it answers, and warms it up with 3 s of $tmp/warm.jsonl.
start_server() {
  port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  "$bin" run --data-dir "$1" --no-generator --port "$port" --quiet 2> "$tmp/run.err" &
  server=$!
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/models" >/dev/null && break; sleep 0.5; done
  wrk -t2 -c32 -d3s -s benchmarks/decide.lua "http://127.0.0.1:$port" -- "$tmp/warm.jsonl" 2 > /dev/null
}

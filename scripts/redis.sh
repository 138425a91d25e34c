#!/usr/bin/env bash
# A throwaway Redis for tests and benchmarks (no persistence, loopback only).
#   scripts/redis.sh start PORT   → prints the server's directory; its URL is redis://127.0.0.1:PORT
#   scripts/redis.sh stop DIR
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  echo "== installing redis-server" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
case "${1:-}" in
start)
  port=${2:?port}
  dir=$(mktemp -d /tmp/cardwatch-redis.XXXXXX)
  echo "$port" > "$dir/port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >/dev/null
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && { echo "$dir"; exit 0; }
    sleep 0.05
  done
  echo "redis-server did not answer on port $port: $(tail -5 "$dir/redis.log")" >&2
  exit 1
  ;;
stop) redis-cli -p "$(cat "${2:?dir}/port")" shutdown nosave >/dev/null 2>&1 || true ;;
*) echo "usage: $0 start PORT | stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and benchmarks (PostgreSQL refuses to run as root: it runs
# as the `postgres` user). fsync stays on, as the crash tests need.
#   scripts/postgres.sh start PORT   → prints the server's directory; its URL is
#                                      postgres://ci@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR
#   scripts/postgres.sh restart DIR  (pg_ctl restart -m fast)
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$PGBIN" ]; then
  echo "== installing postgresql" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
start)
  port=${2:?port}
  dir=$(mktemp -d /tmp/cardwatch-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then install -d -o postgres -g postgres "$dir/data" "$dir/sock"; else mkdir -p "$dir/data" "$dir/sock"; fi
  as_postgres "$PGBIN/initdb" -D "$dir/data" -U ci --auth=trust -E UTF8 --no-locale >/dev/null
  echo "$port" > "$dir/port"
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=on -c max_connections=300" start >/dev/null
  echo "$dir"
  ;;
stop) as_postgres "$PGBIN/pg_ctl" -D "${2:?dir}/data" -m fast -w stop >/dev/null ;;
restart) as_postgres "$PGBIN/pg_ctl" -D "${2:?dir}/data" -m fast -w restart >/dev/null ;;
halt) as_postgres "$PGBIN/pg_ctl" -D "${2:?dir}/data" -m immediate -w stop >/dev/null ;;
resume)
  dir=${2:?dir}
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $(cat "$dir/port") -k $dir/sock -c fsync=on -c max_connections=300" start >/dev/null
  ;;
*) echo "usage: $0 start PORT | stop DIR | restart DIR | halt DIR | resume DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The test command: style, unit and property tests, then the CLI as a new user runs it.
# Installs what it needs itself, so it passes on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need_apt+=(libsqlite3-dev)
# The Kafka trait's library, and kcat for the interop test.
dpkg -s librdkafka-dev >/dev/null 2>&1 || need_apt+=(librdkafka-dev)
command -v kcat >/dev/null || need_apt+=(kcat)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== a throwaway PostgreSQL (fsync on) for the PostgreSQL warehouse's tests"
PG_PORT=${CARDWATCH_PG_PORT:-55432}
PG_DIR=$(scripts/postgres.sh start "$PG_PORT")
trap 'scripts/postgres.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"' EXIT
export CARDWATCH_TEST_POSTGRES="postgres://ci@127.0.0.1:$PG_PORT/postgres" CARDWATCH_REQUIRE_POSTGRES=1
export CARDWATCH_PG_DIR="$PG_DIR"

echo "== a throwaway Redis for the online feature store's tests"
REDIS_PORT=${CARDWATCH_REDIS_PORT:-56379}
REDIS_DIR=$(scripts/redis.sh start "$REDIS_PORT")
trap 'scripts/postgres.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"; scripts/redis.sh stop "$REDIS_DIR"; rm -rf "$REDIS_DIR"' EXIT
export CARDWATCH_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT" CARDWATCH_REQUIRE_REDIS=1 CARDWATCH_REDIS_DIR="$REDIS_DIR"

echo "== swift format lint --strict"
swift format lint --strict --recursive Package.swift Sources Tests

# The tests build with the Kafka trait (librdkafka); the CLI tests use the release build without
# it, which is what the README's run command builds.
echo "== swift build (debug, with tests, --traits Kafka)"
swift build --traits Kafka --build-tests

echo "== CLI smoke test (release build, as a new user)"
scripts/cli-smoke.sh

echo "== bad data end to end: card numbers on every path, event-time bounds, labels, short data sets"
python3 scripts/data-test.py "$(swift build -c release --show-bin-path)/cardwatch" "$(mktemp -d)/data-test"

echo "== HTTP: Prometheus scrape, headless Chromium on the dashboard, schemathesis"
scripts/http-tests.sh

echo "== Kafka: kcat interop, a scale-out of three instances, kills, broker faults, a poison record"
kafka_bin="$(swift build --traits Kafka --show-bin-path)/cardwatch"
python3 scripts/kafka-scale-test.py "$kafka_bin" "$(mktemp -d)/kafka-test" "$CARDWATCH_TEST_POSTGRES"
echo "== Kafka: the HTTP API of instances (synchronous decisions from any instance, the cluster away)"
python3 scripts/kafka-http-test.py "$kafka_bin" "$(mktemp -d)/kafka-http" "$CARDWATCH_TEST_POSTGRES"
echo "== Kafka: one instance alone on the embedded SQLite warehouse, a second one refused"
python3 scripts/kafka-alone-test.py "$kafka_bin" "$(mktemp -d)/kafka-alone"
echo "== Kafka: confluent-kafka (PyPI, in a virtual environment) produces and consumes, JSON and Avro"
python3 scripts/kafka-interop-test.py "$kafka_bin" "$(mktemp -d)/kafka-interop" "$CARDWATCH_TEST_POSTGRES"

echo "== Redis: two processors and an API node (serve), the online store, its breaker, cw:alerts, the dashboard"
.venv-http/bin/python scripts/online-test.py "$kafka_bin" "$(mktemp -d)/online" "$CARDWATCH_TEST_POSTGRES"
echo "== deploy/: the compose file and systemd units use commands and flags that exist"
.venv-http/bin/python -c "import yaml" 2>/dev/null || .venv-http/bin/pip install -q pyyaml
.venv-http/bin/python scripts/deploy-test.py "$kafka_bin"

echo "== swift test"
# Progress lines (◇, ↳) are dropped to keep the log short; results and summaries stay.
# PostgreSQL's cases run second, on their own: the server's load (databases created, batches
# committed with fsync) must not share the cores with the first run's timed HTTP cases.
set +o pipefail
# The HTTP server's cases run in a process of their own: Swift Testing runs cases on the
# cooperative pool (two threads here), and a case that blocks a thread (librdkafka's polls,
# SQLite's fsync) starved the servers' tasks into 5 s timeouts on a loaded CI machine.
env -u CARDWATCH_TEST_POSTGRES -u CARDWATCH_REQUIRE_POSTGRES swift test --traits Kafka --skip-build --skip CardwatchServerTests 2>&1 | grep -vE '^(◇|↳)|^􀟈'
status=${PIPESTATUS[0]}
echo "== swift test: the HTTP server, alone"
env -u CARDWATCH_TEST_POSTGRES -u CARDWATCH_REQUIRE_POSTGRES swift test --traits Kafka --skip-build --filter CardwatchServerTests 2>&1 | grep -vE '^(◇|↳)|^􀟈'
server_status=${PIPESTATUS[0]}
echo "== swift test: the PostgreSQL backends (contract suites, registry, warehouse)"
swift test --traits Kafka --skip-build --filter 'Postgres|Contract|ModelRegistryTests' 2>&1 | grep -vE '^(◇|↳)|^􀟈'
postgres_status=${PIPESTATUS[0]}
set -o pipefail
[ "$status" -eq 0 ] && [ "$server_status" -eq 0 ] && [ "$postgres_status" -eq 0 ]
